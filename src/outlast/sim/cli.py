"""``outlast sim``: the fake providers, on one port."""

from __future__ import annotations

import click


@click.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=9100, show_default=True, type=int, help="Port for every vendor and /_sim.")
@click.option("--scenario", default=None, help="A shipped scenario's name (e.g. june-2-2026) or a YAML file.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for answers and fault dice.")
@click.option("--time-scale", "time_scale", default=None, type=float,
              help="Simulated seconds per real second (overrides the scenario's).")
def sim_command(host: str, port: int, scenario: str | None, seed: int, time_scale: float | None) -> None:
    """Serve simulated Anthropic, OpenAI, Gemini and local providers, with fault injection and status pages.

    Vendors: /anthropic, /openai/v1, /gemini/v1beta, /local/v1.  Control API: /_sim/faults, /_sim/requests,
    /_sim/reset, /_sim/state, /_sim/clock.
    """
    from outlast.sim.scenario import load_scenario
    from outlast.sim.server import serve

    if scenario is not None:
        try:
            load_scenario(scenario)
        except (ValueError, OSError) as error:
            raise click.BadParameter(str(error), param_hint="--scenario") from None
    click.echo(f"outlast sim on http://{host}:{port} (scenario: {scenario or 'none'}, seed {seed})", err=True)
    serve(host, port, scenario=scenario, seed=seed, time_scale=time_scale)
