"""GreenKPI collector: measures GPU, CPU and DRAM energy on ML hosts and sends it to GreenKPI.

Never imports Django or the ``greenkpi`` backend; its only contract is ``greenkpi_schema``.
From Python, ``with greenkpi_collector.track(team="nlp", model="bert", run="r1"):`` attributes
the GPU energy of this process (and its children) to that team, model and run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from greenkpi_collector.tracking import track

__all__ = ["__version__", "track"]


def __getattr__(name: str) -> Any:
    # Lazy: `import greenkpi_collector` in a training script must stay cheap.
    if name == "track":
        from greenkpi_collector.tracking import track

        return track
    raise AttributeError(name)
