"""The attributor, taught the exporter sources' pods: a negative id is a pod an exporter labelled
(``scrape.PodTable``), every other id a real process resolved as before."""

from __future__ import annotations

from typing import Any

from greenkpi_collector.attribution import Claim
from greenkpi_collector.identity import Attributor
from greenkpi_collector.sources.exporters.scrape import ExporterSource


class PodAttributor(Attributor):
    def __init__(self, *args: Any, exporters: list[ExporterSource], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exporters = exporters

    def resolve(self, pid: int) -> Claim | None:
        if pid < 0:
            for source in self.exporters:
                claim = source.pods.claim(pid)
                if claim is not None:
                    return claim
            return None
        return super().resolve(pid)
