from django.urls import path

from greenkpi.workloads import api, api_scheduler

urlpatterns = [
    path("models/", api.ModelsApi.as_view(), name="models"),
    path("models/summary/", api.ModelsSummaryApi.as_view(), name="models-summary"),
    path("models/<int:model_id>/", api.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<int:model_id>/versions/", api.VersionsApi.as_view(), name="model-versions"),
    path("models/<int:model_id>/runs/", api.RunsApi.as_view(), name="model-runs"),
    path(
        "models/<int:model_id>/runs/<int:run_id>/close/",
        api.RunCloseApi.as_view(),
        name="model-run-close",
    ),
    path(
        "models/<int:model_id>/evaluations/", api.EvaluationsApi.as_view(), name="model-evaluations"
    ),
    path("models/<int:model_id>/drift-reports/", api.DriftReportsApi.as_view(), name="model-drift"),
    path("models/<int:model_id>/retraining/", api.RetrainingApi.as_view(), name="model-retraining"),
    path("models/<int:model_id>/carbon/", api.CarbonApi.as_view(), name="model-carbon"),
    path("models/<int:model_id>/advice/", api.AdviceApi.as_view(), name="model-advice"),
    path("identity-mappings/", api_scheduler.MappingsApi.as_view(), name="identity-mappings"),
    path(
        "identity-mappings/<int:mapping_id>/",
        api_scheduler.MappingApi.as_view(),
        name="identity-mapping",
    ),
    path("slurm/jobs/", api_scheduler.SlurmJobsApi.as_view(), name="slurm-jobs"),
    path("k8s/pods/", api_scheduler.K8sPodsApi.as_view(), name="k8s-pods"),
]
