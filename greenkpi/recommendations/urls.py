from django.urls import path

from greenkpi.recommendations import api

urlpatterns = [
    path("recommendations/", api.RecommendationsApi.as_view(), name="recommendations"),
    path(
        "recommendations/<int:finding_id>/decision/",
        api.DecisionApi.as_view(),
        name="recommendation-decision",
    ),
]
