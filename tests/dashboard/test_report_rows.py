"""The report's completeness rows, written in Python for speed, are the bytes the template loop
wrote (dashboard/reports/rows.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.template import Context, Template

from greenkpi.dashboard.reports.rows import completeness_rows
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
