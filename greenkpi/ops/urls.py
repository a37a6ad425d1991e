from django.urls import path

from greenkpi.ops.views import metrics

urlpatterns = [path("metrics", metrics, name="metrics")]
