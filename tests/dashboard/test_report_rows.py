"""The report's team and completeness rows, written in Python for speed, are the bytes the
template loops wrote (dashboard/reports/rows.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.template import Context, Template

from greenkpi.dashboard.reports.rows import completeness_rows, team_rows
from greenkpi.dashboard.reports.selectors import HostCompleteness

# The loop report_body.html had, verbatim.
LOOP = Template(
    "{% for h in hosts %}\n"
    '    <tr data-host="{{ h.hostname }}"><th scope="row">{{ h.hostname }}</th><td class="num">'
    '{{ h.hours_with_data }}</td><td class="num">{% if h.share_pct is None %}\u2013{% else %}'
    "{{ h.share_pct|floatformat:1 }} %{% endif %}</td><td>"
    '{{ h.last_seen|date:"Y-m-d H:i"|default:"never" }}{% if h.silent %} '
    '<span class="flag">silent</span>{% endif %}</td></tr>\n'
    "    {% endfor %}"
)


def test_completeness_rows_are_what_the_template_wrote():
    seen = datetime(2026, 5, 4, 13, 7, 59, tzinfo=UTC)
    hosts = [
        HostCompleteness("gpu-a", 700, 744.0, seen, silent=False),
        HostCompleteness('gpu-<b>&"x"', 1, 744.0, seen, silent=True),  # escaped
        HostCompleteness("never-seen", 0, 744.0, None, silent=True),
        HostCompleteness("no-hours", 0, 0.0, seen, silent=False),  # no share: an en dash
        HostCompleteness("eighth", 1, 8.0, seen, silent=False),  # 12.5 %
        HostCompleteness("rounded", 49, 400.0, seen, silent=False),  # 12.25: "12.3" (half up)
        HostCompleteness("thousands", 1234, 1234.0, seen, silent=False),
    ]
    expected = LOOP.render(Context({"hosts": hosts}))
    assert str(completeness_rows(hosts)) == expected
    assert "gpu-&lt;b&gt;&amp;&quot;x&quot;" in expected and "12.3 %" in expected
    assert "never" in expected and "\u2013" in expected
    assert completeness_rows([]) == ""


# The team loop report_body.html had, verbatim.
TEAM_LOOP = Template(
    "{% for row in rows %}\n"  # the 4 spaces before the tag were the text before the loop
    '    <tr class="{{ row.row }}" data-team="{{ row.team }}">\n'
    '      <th scope="row">{{ row.team }}</th>\n'
    '      <td class="num">{{ row.energy_kwh|sig }}</td>\n'
    '      <td class="num">{{ row.facility_energy_kwh|sig }}</td>\n'
    '      <td class="num">{{ row.pue_used|floatformat:2|default:"\u2013" }}</td>\n'
    '      <td class="num" data-quantity="location">{{ row.operational_location_kgco2e|co2e }}</td>\n'
    '      <td class="num" data-quantity="market">{{ row.operational_market_kgco2e|co2e }}</td>\n'
    '      <td class="num" data-quantity="upstream">{{ row.upstream_kgco2e|co2e }}</td>\n'
    '      <td class="num" data-quantity="embodied">{{ row.embodied_kgco2e|co2e }}</td>\n'
    '      <td class="num" data-quantity="total">{{ row.total_kgco2e|co2e }}</td>\n'
    '      <td class="num">{% if row.embodied_share_pct is None %}\u2013{% else %}{{ row.embodied_share_pct|floatformat:1 }} %{% endif %}</td>\n'
    '      <td class="num">{% if row.renewable_share_pct is None %}\u2013{% else %}{{ row.renewable_share_pct|floatformat:1 }} %{% endif %}</td>\n'
    '      <td class="num">{% if row.cost is None %}{% if row.currency %}{{ row.currency }}{% else %}no tariff{% endif %}{% else %}{{ row.cost|sig }} {{ row.currency }}{% endif %}{% if row.uncosted_energy_kwh and row.currency %}<br><small>{{ row.uncosted_energy_kwh|sig }} kWh without tariff</small>{% endif %}</td>\n'
    '      <td class="num">{{ row.allocated_gpu_h|sig }}</td>\n'
    '      <td class="num">{% if row.avg_gpu_utilization_pct is None %}\u2013{% else %}{{ row.avg_gpu_utilization_pct|floatformat:1 }} %{% endif %}</td>\n'
    '      <td class="num">{{ row.idle_gpu_h|sig }}</td>\n'
    '      <td class="num">{{ row.idle_kgco2e|co2e }}</td>\n'
    '      <td class="num">{% if row.estimated_share_pct is None %}\u2013{% else %}{{ row.estimated_share_pct|floatformat:1 }} %{% endif %}</td>\n'
    "      <td>{% if row.hourly_intensity_share_pct %}hourly {{ row.hourly_intensity_share_pct|floatformat:0 }} % {% endif %}{% if row.annual_intensity_share_pct %}annual {{ row.annual_intensity_share_pct|floatformat:0 }} % {% endif %}{% if row.default_intensity_share_pct %}world default {{ row.default_intensity_share_pct|floatformat:0 }} %{% endif %}</td>\n"
    "    </tr>\n"
    "    {% endfor %}"
)


def team_row(**values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "row": "team",
        "team": "nlp",
        "energy_kwh": 1234.5678,
        "facility_energy_kwh": 1604.9,
        "pue_used": 1.3,
        "operational_location_kgco2e": 612.0,
        "operational_market_kgco2e": 1540.25,
        "upstream_kgco2e": 55.5,
        "embodied_kgco2e": 0.0123,
        "total_kgco2e": 612.0123,
        "embodied_share_pct": 0.002,
        "renewable_share_pct": 31.25,
        "cost": 288.8,
        "currency": "EUR",
        "uncosted_energy_kwh": 0.0,
        "allocated_gpu_h": 96.0,
        "avg_gpu_utilization_pct": 62.45,
        "idle_gpu_h": 12.0,
        "idle_kgco2e": 7.1,
        "estimated_share_pct": 0.0,
        "hourly_intensity_share_pct": 40.5,
        "annual_intensity_share_pct": 59.5,
        "default_intensity_share_pct": 0.0,
    }
    return row | values


def test_team_rows_are_what_the_template_wrote():
    rows = [
        team_row(),
        team_row(team='<a href="x">R&D</a>', pue_used=None, embodied_share_pct=None),
        team_row(cost=None, currency="", renewable_share_pct=None, default_intensity_share_pct=3),
        team_row(cost=None, currency="USD", uncosted_energy_kwh=12.5, avg_gpu_utilization_pct=None),
        team_row(uncosted_energy_kwh=3.0, estimated_share_pct=None, hourly_intensity_share_pct=0),
        team_row(row="total", team="Organisation total", energy_kwh=None, idle_kgco2e=None),
    ]
    expected = TEAM_LOOP.render(Context({"rows": rows}))
    assert str(team_rows(rows)) == expected
    assert "&lt;a href=&quot;x&quot;&gt;R&amp;D&lt;/a&gt;" in expected and "no tariff" in expected
    assert "kWh without tariff" in expected and "world default 3 %" in expected
    assert team_rows([]) == ""
