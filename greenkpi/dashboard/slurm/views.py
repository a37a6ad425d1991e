"""Scheduler pages (Slurm jobs, Kubernetes pods): resolve the scope, call the one report / the
mapping services, render.

Scoped like every page: the jobs page shows the jobs whose energy went to teams the person may
see; the mapping pages exist only for organisation admins (others, and any mapping of another
organisation, get 404 — never 403, so ids cannot be probed).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from greenkpi.dashboard.common.pages import dashboard_view, page_context
from greenkpi.dashboard.slurm.forms import MappingForm
from greenkpi.inventory.access import Scope, scope_for
from greenkpi.inventory.mappings import mapping_delete, mapping_save
from greenkpi.inventory.models import IdentityMapping
from greenkpi.kpis import labels
from greenkpi.lib.periods import period_from_query
from greenkpi.workloads.selectors.scheduler import jobs_report, pods_report


@dashboard_view
def slurm_jobs(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    # Not "user": that name is the logged-in person in every template (the navigation hides without it).
    account, slurm_user = request.GET.get("account", ""), request.GET.get("user", "")
    report = jobs_report(
        organisation_id=scope.organisation.pk,
        teams={t.pk: t.slug for t in scope.teams},
        start=period.start,
        end=period.end,
        account=account,
        user=slurm_user,
    )
    context = page_context(
        request,
        scope,
        period,
        report=report,
        account=account,
        slurm_user=slurm_user,
        can_map=scope.manages_org,
    )
    return render(request, "dashboard/slurm/jobs.html", context)


@dashboard_view
def k8s_pods(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org"))
    period = period_from_query(request.GET, default="30d", tz=scope.organisation.tz)
    namespace = request.GET.get("namespace", "")[:63]  # an RFC 1123 label at most
    report = pods_report(
        organisation_id=scope.organisation.pk,
        teams={t.pk: t.slug for t in scope.teams},
        start=period.start,
        end=period.end,
        namespace=namespace,
    )
    context = page_context(
        request,
        scope,
        period,
        report=report,
        namespace=namespace,
        can_map=scope.manages_org,
        total=labels.TOTAL,
        location=labels.SCOPE2_LOCATION,
    )
    return render(request, "dashboard/slurm/pods.html", context)


def _admin_scope(request: HttpRequest) -> Scope:
    scope = scope_for(request.user, request.GET.get("org") or request.POST.get("org"))
    if not scope.manages_org:
        raise Http404("no such page")  # as if it did not exist
    return scope


def _saved(form: MappingForm, scope: Scope, mapping: IdentityMapping | None) -> bool:
    if not form.is_valid():
        return False
    data = form.cleaned_data
    try:
        mapping_save(
            organisation=scope.organisation,
            mapping=mapping,
            kind=data["kind"],
            pattern=data["pattern"],
            team=data.get("team"),
            model_key=data.get("model_key", ""),
            run_kind=data.get("run_kind", ""),
            priority=data.get("priority") or 0,
            cluster=data.get("cluster", ""),
            note=data.get("note", ""),
        )
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, messages)
        return False
    return True


def _back(scope: Scope) -> HttpResponse:
    return redirect(f"/slurm/mappings/?{urlencode({'org': scope.organisation.slug})}")


@require_http_methods(["GET", "POST"])
@dashboard_view
def slurm_mappings(request: HttpRequest) -> HttpResponse:
    scope = _admin_scope(request)
    if request.method == "POST":
        form = MappingForm(request.POST, organisation=scope.organisation)
        if _saved(form, scope, None):
            return _back(scope)
    else:
        # "map them": the unmapped list links here with ?kind=slurm-account&pattern=<account>
        prefill = {k: request.GET[k] for k in ("kind", "pattern") if request.GET.get(k)}
        form = MappingForm(initial=prefill, organisation=scope.organisation)
    mappings = IdentityMapping.objects.filter(organisation=scope.organisation).select_related(
        "team"
    )
    context = page_context(request, scope, None, form=form, mappings=mappings)
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/slurm/mappings.html", context, status=status)


def _mapping(scope: Scope, mapping_id: int) -> IdentityMapping:
    mapping = IdentityMapping.objects.filter(organisation=scope.organisation, pk=mapping_id).first()
    if mapping is None:
        raise Http404("no such mapping")
    return mapping


@require_http_methods(["GET", "POST"])
@dashboard_view
def slurm_mapping_edit(request: HttpRequest, mapping_id: int) -> HttpResponse:
    scope = _admin_scope(request)
    mapping = _mapping(scope, mapping_id)
    if request.method == "POST":
        form = MappingForm(request.POST, organisation=scope.organisation)
        if _saved(form, scope, mapping):
            return _back(scope)
    else:
        form = MappingForm(initial=MappingForm.initial_of(mapping), organisation=scope.organisation)
    context = page_context(request, scope, None, form=form, mapping=mapping)
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/slurm/mapping_form.html", context, status=status)


@require_POST
@dashboard_view
def slurm_mapping_delete(request: HttpRequest, mapping_id: int) -> HttpResponse:
    scope = _admin_scope(request)
    mapping_delete(mapping=_mapping(scope, mapping_id))
    return _back(scope)


urlpatterns = [
    path("slurm/", slurm_jobs, name="slurm-jobs"),
    path("k8s/pods/", k8s_pods, name="k8s-pods"),
    path("slurm/mappings/", slurm_mappings, name="slurm-mappings"),
    path("slurm/mappings/<int:mapping_id>/", slurm_mapping_edit, name="slurm-mapping-edit"),
    path(
        "slurm/mappings/<int:mapping_id>/delete/",
        slurm_mapping_delete,
        name="slurm-mapping-delete",
    ),
]
