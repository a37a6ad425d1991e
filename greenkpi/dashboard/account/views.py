"""The person's own API tokens (issue 15): create (shown once), list, revoke. Everyone signed in
has this page; a token never carries more than its owner may do (integrations.tokens)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from greenkpi.dashboard.account.forms import PersonalTokenForm
from greenkpi.dashboard.common.pages import dashboard_view, page_context
from greenkpi.integrations.models import PersonalAccessToken
from greenkpi.integrations.tokens import token_create, token_revoke, tokens_of
from greenkpi.inventory.access import scope_for


@never_cache  # the page may carry a token shown once
@require_http_methods(["GET", "POST"])
@dashboard_view
def api_tokens(request: HttpRequest) -> HttpResponse:
    scope = scope_for(request.user, request.GET.get("org") or request.POST.get("org"))
    if request.method == "POST" and request.POST.get("revoke"):
        token = PersonalAccessToken.objects.filter(
            pk=_int(request.POST["revoke"]), user_id=request.user.pk
        ).first()
        if token is None:
            raise Http404("no such token")
        token_revoke(token=token, user=request.user)
        return redirect(f"{request.path}?org={scope.organisation.slug}")
    form = PersonalTokenForm(request.POST or None, scope=scope)
    created = secret = None
    if request.method == "POST" and form.is_valid():
        try:
            created, secret = token_create(
                user=request.user,
                organisation=scope.organisation,
                name=form.cleaned_data["name"],
                access=form.cleaned_data["access"],
                expires_at=form.expires_at(),
                teams=list(form.cleaned_data["teams"]),
            )
            form = PersonalTokenForm(scope=scope)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
    context = page_context(
        request,
        scope,
        None,
        section="account",
        form=form,
        created=created,
        secret=secret,
        tokens=tokens_of(request.user),
    )
    return render(request, "dashboard/account_tokens.html", context)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Http404("no such token") from None


urlpatterns = [path("account/api-tokens/", api_tokens, name="account-tokens")]
