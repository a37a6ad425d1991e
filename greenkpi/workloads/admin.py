from django.contrib import admin

from greenkpi.workloads.models import (
    DriftReport,
    Evaluation,
    MLModel,
    ModelVersion,
    RetrainingAssessment,
    RetrainOutcome,
    Run,
)

for model in (MLModel, ModelVersion, Run, Evaluation, DriftReport, RetrainingAssessment):
    admin.site.register(model)


@admin.register(RetrainOutcome)
class RetrainOutcomeAdmin(admin.ModelAdmin):
    list_display = ("run", "metric", "gain", "energy_kwh", "kgco2e", "flagged")
