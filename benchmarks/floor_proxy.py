"""The Python floor: the least a Python HTTP pass-through proxy can add. A measuring stick, not a product.

aiohttp server + one pooled aiohttp ClientSession on uvloop. It forwards the request body to the same
path upstream and returns the upstream's status and body; event streams pass through chunk by chunk.

    python benchmarks/floor_proxy.py --port 9000 --upstream http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import uvloop
from aiohttp import web

FORWARD = ("content-type", "authorization")


async def serve(port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
                                    auto_decompress=False, skip_auto_headers=("User-Agent",))

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD}
        async with session.post(upstream + request.path, data=body, headers=headers) as up:
            content_type = up.headers.get("content-type", "application/json")
            if not content_type.startswith("text/event-stream"):
                return web.Response(status=up.status, body=await up.read(), content_type=None,
                                    headers={"content-type": content_type})
            response = web.StreamResponse(status=up.status, headers={"content-type": content_type})
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream.rstrip("/")))


if __name__ == "__main__":
    main()
