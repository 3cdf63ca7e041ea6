"""The handler SDK for writing deployments in Python (PROTOCOL.md §4).

```python
greeter = Service("Greeter")

@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}!"

serve([greeter], port=9080)
```
"""

from processor.sdk.context import Context
from processor.sdk.errors import TerminalError
from processor.sdk.server import RunningServer, make_app, run_server, serve
from processor.sdk.service import Handler, Service

__all__ = [
    "Context",
    "Handler",
    "RunningServer",
    "Service",
    "TerminalError",
    "make_app",
    "run_server",
    "serve",
]
