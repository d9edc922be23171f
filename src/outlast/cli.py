"""The ``outlast`` command line: a thin shell over the core."""

from __future__ import annotations

import logging
import socket
import sys
import time

import click
from rich.console import Console

from outlast import __version__
from outlast.config import Config, ConfigError, resolve

DEFAULT_PORT = 8484
err = Console(stderr=True)


def _load(config_path: str | None) -> Config:
    try:
        return resolve(config_path)
    except ConfigError as error:
        err.print(f"[bold red]configuration error:[/] {error}", markup=True, highlight=False)
        sys.exit(2)


def served_url(host: str, port: int) -> str:
    """The address a gateway listening on ``host``:``port`` is reached at (the machine's name for a
    wildcard address), when the configuration does not say (``health.public_url``)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="outlast")
def main() -> None:
    """outlast: keep AI work going when a provider goes down."""


@main.command()
@click.option("--config", "config_path", envvar="OUTLAST_CONFIG", type=click.Path(dir_okay=False),
              help="Configuration file (default: $OUTLAST_CONFIG, ./outlast.yaml, else the environment).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port to listen on.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request line (costs throughput).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: str | None, host: str, port: int, access_log: bool, log_level: str) -> None:
    """Run the gateway."""
    import uvicorn

    from outlast.app import build_gateway
    from outlast.web.server import CoalescingHttpToolsProtocol, settle_heap

    config = _load(config_path)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = build_gateway(config)
    if gateway.health_service is not None and gateway.health_service.webhooks.base_url is None:
        gateway.health_service.webhooks.base_url = served_url(host, port)  # for the links in webhooks
    routes = ", ".join(config.routes) or "(none)"
    err.print(f"outlast {__version__} on http://{host}:{port}  providers: "
              f"{', '.join(config.providers) or '(none)'}  routes: {routes}", highlight=False)
    settle_heap()  # after everything long-lived is built: see outlast.web.server
    uvicorn.run(
        gateway,
        host=host,
        port=port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        access_log=access_log,
        server_header=False,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )


@main.group("config")
def config_group() -> None:
    """Inspect configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def config_check(path: str | None) -> None:
    """Validate a configuration file (default: the one `serve` would use)."""
    config = _load(path)
    click.echo(f"ok: {len(config.providers)} providers, {len(config.routes)} routes")
    for name, provider in config.providers.items():
        where = provider.base_url or "(default endpoint)"
        key = "key set" if provider.api_key is not None else "no key"
        click.echo(f"  provider {name}: {provider.kind} at {where}, {key}, approved for "
                   f"{', '.join(provider.approved_for)}")
    for name, candidates in config.routes.items():
        click.echo(f"  route {name}: {' -> '.join(candidates)}")


@main.command()
@click.option("--duration", default=120.0, show_default=True, type=float,
              help="Seconds to run; the scenario is compressed to fit.")
@click.option("--scenario", default="june-2-2026", show_default=True, help="Simulator scenario (name or YAML file).")
@click.option("--sim-port", type=int, default=None, help="Port for the simulator (default: a free one).")
@click.option("--gateway-port", type=int, default=None, help="Port for the gateway (default: a free one).")
@click.option("--concurrency", default=4, show_default=True, type=int, help="Concurrent simulated clients.")
@click.option("--ui/--no-ui", default=True, show_default=True, help="Live terminal view.")
def demo(duration: float, scenario: str, sim_port: int | None, gateway_port: int | None, concurrency: int,
         ui: bool) -> None:
    """Simulated providers with a scripted outage, the gateway, traffic, and a live view."""
    from rich.console import Console

    from outlast.demo import DemoOptions, Tally, run_demo, summary_lines
    from outlast.sim.scenario import load_scenario

    try:
        load_scenario(scenario)
    except (ValueError, OSError) as error:
        raise click.BadParameter(str(error), param_hint="--scenario") from None
    options = DemoOptions(duration=duration, scenario=scenario, sim_port=sim_port, gateway_port=gateway_port,
                          concurrency=concurrency, ui=ui)
    console = Console()
    console.print(f"outlast demo: scenario {scenario} compressed into {duration:.0f} s; Ctrl-C stops it.",
                  highlight=False)
    tally = Tally()
    try:
        run_demo(options, console=console, tally=tally)
    except KeyboardInterrupt:  # while starting or stopping: the servers are down all the same
        tally.interrupted = True
        tally.finished = tally.finished or time.monotonic()
    if tally.interrupted:
        console.print("stopped; everything the demo started has been shut down. What ran until then:")
    console.print("\n[bold]outlast demo: summary[/]")
    for line in summary_lines(tally):
        console.print("  " + line, highlight=False, soft_wrap=True)  # commands stay whole, to copy
    if tally.interrupted:
        sys.exit(130)  # the shell's convention for a run ended by Ctrl-C


def _register_optional() -> None:
    from outlast.sim.cli import sim_command

    main.add_command(sim_command)


_register_optional()


def _register_memory() -> None:
    # conversations, import, handoff, chat, store: implemented in outlast.memory.cli
    from outlast.memory.cli import register

    register(main)


_register_memory()


def _register_health() -> None:
    # report, status: implemented in outlast.health.cli
    from outlast.health.cli import register

    register(main)


_register_health()


def _register_governance() -> None:
    # keys, audit, report usage: implemented in outlast.governance.cli
    from outlast.governance.cli import register

    register(main)


_register_governance()


if __name__ == "__main__":
    main()
