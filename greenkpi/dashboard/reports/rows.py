"""The report's two long tables' rows as HTML (per team, per host), written here rather than in
the template.

An organisation of 250 hosts and 50 teams made the template evaluate ~3,000 nodes for these rows:
25 ms of CPU of a ~90 ms report page (bench/dashboard.py). The same filters the template used
(``floatformat``, ``date`` in the current time zone, the unit filters, autoescaping) produce the
same bytes; tests/dashboard/test_report_rows.py compares them with the template loops they
replace.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from django.template import defaultfilters
from django.utils import timezone, translation
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from greenkpi.dashboard.reports.selectors import HostCompleteness
from greenkpi.kpis.templatetags.kpi_units import co2e, sig

# One row, as report_body.html wrote it.
ROW = (
    '<tr data-host="{host}"><th scope="row">{host}</th><td class="num">{hours}</td>'
    '<td class="num">{share}</td><td>{seen}{flag}</td></tr>'
)
FLAG = ' <span class="flag">silent</span>'
NONE = "\u2013"  # an en dash: no share (a month of no hours)


@lru_cache(maxsize=4096)
def _floatformat(value: object, digits: int, language: str | None) -> str:
    """The template's ``floatformat`` (its Decimal rounding and the language's separator), kept:
    the same shares repeat (a whole month is 100.0 % for most hosts) and each call costs ~25 us."""
    return str(defaultfilters.floatformat(value, digits))


def floatformat(value: object, digits: int) -> str:
    return _floatformat(value, digits, translation.get_language())


def _seen(moment: datetime | None) -> str:
    """``{{ moment|date:"Y-m-d H:i"|default:"never" }}``: in the current time zone, as the date
    filter writes it (zero-padded fields), "never" without a time."""
    if moment is None:
        return "never"
    t = timezone.template_localtime(moment)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}"


def completeness_rows(hosts: Iterable[HostCompleteness]) -> SafeString:
    out = []
    for h in hosts:
        share = h.share_pct
        out.append(
            ROW.format(
                host=conditional_escape(h.hostname),
                hours=h.hours_with_data,
                share=NONE if share is None else f"{floatformat(share, 1)} %",
                seen=_seen(h.last_seen),
                flag=FLAG if h.silent else "",
            )
        )
    # Each row with the whitespace the template loop put around it.
    return mark_safe("".join(f"\n    {row}\n    " for row in out))  # every value escaped above


# One team row, as report_body.html wrote it (the loop's indentation included).
TEAM_ROW = """
    <tr class="{kind}" data-team="{team}">
      <th scope="row">{team}</th>
      <td class="num">{energy}</td>
      <td class="num">{facility}</td>
      <td class="num">{pue}</td>
      <td class="num" data-quantity="location">{location}</td>
      <td class="num" data-quantity="market">{market}</td>
      <td class="num" data-quantity="upstream">{upstream}</td>
      <td class="num" data-quantity="embodied">{embodied}</td>
      <td class="num" data-quantity="total">{total}</td>
      <td class="num">{embodied_share}</td>
      <td class="num">{renewable_share}</td>
      <td class="num">{cost}</td>
      <td class="num">{gpu_h}</td>
      <td class="num">{utilization}</td>
      <td class="num">{idle_gpu_h}</td>
      <td class="num">{idle_co2e}</td>
      <td class="num">{estimated}</td>
      <td>{sources}</td>
    </tr>
    """


def _text(value: object) -> str:
    """``{{ value }}``: None as "None", as the template printed it; escaped."""
    return str(conditional_escape(value))


def _share(value: object, digits: int = 1) -> str:
    return NONE if value is None else f"{floatformat(value, digits)} %"


def _cost(row: dict[str, object]) -> str:
    currency = row.get("currency")
    if row.get("cost") is None:
        text = _text(currency) if currency else "no tariff"
    else:
        text = f"{_text(sig(row.get('cost')))} {_text(currency)}"
    if row.get("uncosted_energy_kwh") and currency:
        text += (
            f"<br><small>{_text(sig(row.get('uncosted_energy_kwh')))} kWh without tariff</small>"
        )
    return text


def _sources(row: dict[str, object]) -> str:
    out = ""
    for key, name in (("hourly", "hourly"), ("annual", "annual"), ("default", "world default")):
        value = row.get(f"{key}_intensity_share_pct")
        if value:
            out += f"{name} {floatformat(value, 0)} %"
            out += " " if key != "default" else ""
    return out


def team_rows(rows: Iterable[dict[str, object]]) -> SafeString:
    """The per-team table's rows (tiles.display_rows), then its total row."""
    out = []
    for row in rows:
        out.append(
            TEAM_ROW.format(
                kind=_text(row.get("row")),
                team=_text(row.get("team")),
                energy=_text(sig(row.get("energy_kwh"))),
                facility=_text(sig(row.get("facility_energy_kwh"))),
                pue=_text(floatformat(row.get("pue_used"), 2) or NONE),
                location=_text(co2e(row.get("operational_location_kgco2e"))),
                market=_text(co2e(row.get("operational_market_kgco2e"))),
                upstream=_text(co2e(row.get("upstream_kgco2e"))),
                embodied=_text(co2e(row.get("embodied_kgco2e"))),
                total=_text(co2e(row.get("total_kgco2e"))),
                embodied_share=_share(row.get("embodied_share_pct")),
                renewable_share=_share(row.get("renewable_share_pct")),
                cost=_cost(row),
                gpu_h=_text(sig(row.get("allocated_gpu_h"))),
                utilization=_share(row.get("avg_gpu_utilization_pct")),
                idle_gpu_h=_text(sig(row.get("idle_gpu_h"))),
                idle_co2e=_text(co2e(row.get("idle_kgco2e"))),
                estimated=_share(row.get("estimated_share_pct")),
                sources=_sources(row),
            )
        )
    return mark_safe("".join(out))  # every value escaped above
