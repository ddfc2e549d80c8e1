"""CLI: `assistant serve`: load the profile's backend once, then answer OpenAI clients on HOST:PORT."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from typing import Any

import click

from assistant.errors import AssistantError

from .openai_request import Limits

KEY_ENV = "ASSISTANT_API_KEY"
DEFAULT_PORT = 8765
CONNECTIONS = 64
"""Open connections beyond the queue (health checks, requests being read or refused); more get 503."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without a key: screens and documents are private."""
    if not is_loopback(host) and not api_key:
        raise AssistantError(
            f"--host {host} lets other machines use the model; give --api-key KEY (or set {KEY_ENV}) "
            "so that only clients with the key can, or keep the default --host 127.0.0.1"
        )


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), made before the model loads so a busy port fails at
    once; it listens once the model is loaded."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as error:
        raise AssistantError(f"cannot listen on {host}: {error}; use an address of this machine") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise AssistantError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port or stop what uses it"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


@click.command()
@click.option("--profile", "-p", default=None, help="Profile whose model to serve (name or .toml path).")
@click.option("--adapter", default=None, help="LoRA adapter for requests that name the bare profile.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help=f"Address to listen on; one that is not loopback needs --api-key (or {KEY_ENV}).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port (0: any free one; the address is printed).")
@click.option("--api-key", default=None, envvar=KEY_ENV, show_envvar=True,
              help="Clients must send 'Authorization: Bearer KEY'. Prefer the environment variable: "
                   "a command line is visible to other users of this machine.")
@click.option("--max-queue", type=click.IntRange(0, 10_000), default=4, show_default=True,
              help="Requests that may wait while one generates; more get 429 with Retry-After.")
@click.option("--max-tokens", type=click.IntRange(1, 1_000_000), default=Limits.max_tokens, show_default=True,
              help="Largest max_tokens a request may ask for.")
@click.option("--max-images", type=click.IntRange(0, 1000), default=Limits.max_images, show_default=True,
              help="Most images in one request.")
@click.option("--max-image-pixels", type=click.IntRange(1), default=Limits.max_image_pixels, show_default=True,
              help="Largest width x height of one image.")
@click.option("--max-body-mb", type=click.FloatRange(0.001), default=Limits.max_body_bytes / 2**20,
              show_default=True, help="Largest request body, in MiB.")
def serve(profile: str | None, adapter: str | None, host: str, port: int, api_key: str | None, max_queue: int,
          max_tokens: int, max_images: int, max_image_pixels: int, max_body_mb: float) -> None:
    """Serve the profile's model to OpenAI clients: /v1/chat/completions, /v1/models, /health.

    Other apps use a personal adapter with model="PROFILE+ADAPTER". Nothing is saved: requests are not
    added to your chats.
    """
    check_exposure(host, api_key)
    limits = Limits(max_body_bytes=int(max_body_mb * 2**20), max_images=max_images,
                    max_image_pixels=max_image_pixels, max_tokens=max_tokens)
    sock = bind(host, port)
    try:
        run_server(sock, profile, adapter, api_key, max_queue, limits)
    finally:
        sock.close()


def _load(profile: str | None, adapter: str | None) -> tuple[Any, Any]:
    """The profile and its loaded backend, with `adapter` active (checked now, so a bad one fails at start)."""
    from assistant.api import Assistant
    from assistant.backends import unsupported
    from assistant.stack import warn_untested_stack

    warn_untested_stack()
    bot = Assistant.from_profile(profile)
    click.echo(f"loading {bot.profile.name} ...", err=True)
    backend = bot.load()
    if adapter:
        if not backend.capabilities.adapters:
            backend.close()
            raise unsupported("adapters", backend)
        backend.set_adapter(adapter)
    return bot.profile, backend


def run_server(sock: socket.socket, profile_name: str | None, adapter: str | None, api_key: str | None,
               max_queue: int, limits: Limits) -> None:
    import uvicorn

    from .app import ServeSettings, create_app, served_models
    from .worker import ModelWorker

    profile, backend = _load(profile_name, adapter)
    worker = ModelWorker(backend, profile, adapter, max_queue)
    try:
        settings = ServeSettings(profile=profile, adapter=adapter, api_key=api_key, max_queue=max_queue, limits=limits)
        app = create_app(settings, worker)
        models = ", ".join(served_models(settings, backend.capabilities.adapters))
        key_note = "; clients need the API key" if api_key else ""
        sock.listen(128)  # from here on, clients wait in the backlog for uvicorn instead of being refused
        click.echo(f"serving {profile.name} at {url_of(sock)} (models: {models}{key_note}); Ctrl+C stops")
        sys.stdout.flush()
        config = uvicorn.Config(app, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=5,
                                limit_concurrency=CONNECTIONS + max_queue)  # bounds the request bodies held at once
        server = uvicorn.Server(config)
        stop_listening = server.handle_exit

        def handle_exit(sig: int, frame: Any) -> None:
            worker.close_all()  # open streams end now, with the text so far, instead of at the grace timeout
            stop_listening(sig, frame)

        server.handle_exit = handle_exit  # type: ignore[method-assign]
        # uvicorn re-raises the signal that stopped it: SIGTERM too should end here, where the backend is closed.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        click.echo("stopped", err=True)
    finally:
        worker.stop()


def _interrupt(sig: int, frame: Any) -> None:
    raise KeyboardInterrupt
