from django.urls import path

from greenkpi.ingest.views import IngestView

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
]
