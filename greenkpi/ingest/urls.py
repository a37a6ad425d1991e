from django.urls import path

from greenkpi.ingest.views import IngestView
from greenkpi.ingest.views_codecarbon import CodeCarbonIngestView

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
    path(
        "ingest/codecarbon/<str:token>/", CodeCarbonIngestView.as_view(), name="ingest-codecarbon"
    ),
]
