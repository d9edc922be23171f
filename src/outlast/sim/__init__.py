"""``outlast sim``: fake providers speaking the real wire formats, with faults, status pages and scenarios.

Public names: :func:`outlast.sim.app.build_app`, :func:`outlast.sim.server.serve`,
:data:`outlast.sim.cli.sim_command`, :func:`outlast.sim.testing.running_sim`.
"""
