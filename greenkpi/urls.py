from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from greenkpi.demo.login import DemoAwareLoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The login page lists the demo's users in demo mode only (greenkpi/demo/login.py).
    path("accounts/login/", DemoAwareLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/", include("greenkpi.ingest.urls")),
    path("api/v1/", include("greenkpi.workloads.urls")),
    path("api/v1/", include("greenkpi.integrations.urls")),
    path("api/v1/", include("greenkpi.recommendations.urls")),
    path("", include("greenkpi.ops.urls")),
    path("", include("greenkpi.dashboard.urls")),
]

# An unknown /api/ address is a problem+json 404; pages keep templates/404.html.
handler404 = "greenkpi.lib.problems.not_found"
