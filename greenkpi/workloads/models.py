"""The ML registry: models, versions, runs, evaluations, drift reports and retraining state.

A run's energy and carbon are never stored here: they come from ``kpis.HourlyRollup`` rows whose
``model_key`` / ``run_key`` match the keys collectors send (``MLModel.key``, ``Run.key``), so a run
spread over many GPUs and hosts has one total and a late sample changes it by itself.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from greenkpi.inventory.models import Team

KEY_MAX_LEN = 200  # greenkpi_schema.v1.MAX_KEY_LEN: the longest model / run key a collector sends


class SciProviderUnit(models.TextChoices):
    """Provider functional units (GSF SCI for AI §8.2, plus per training run)."""

    TRAINING_RUN = "training-run", "per training run"
    TRAINING_TOKENS = "1m-training-tokens", "per 1M training tokens"
    PARAMETERS = "1b-parameters", "per billion parameters"


class SciConsumerUnit(models.TextChoices):
    """Consumer functional units (GSF SCI for AI §8.1: classical ML per inference, LLM per token)."""

    THOUSAND_INFERENCES = "1k-inferences", "per 1,000 inferences"
    MILLION_TOKENS = "1m-tokens", "per 1M tokens"


class MLModel(models.Model):
    """A model a team trains or serves, and its retraining policy.

    ``key`` is the model key collectors attribute energy to. The policy fields parameterise the
    retraining-need score (docs/retraining.md); the defaults are the ones documented there.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="ml_models")
    key = models.CharField(max_length=KEY_MAX_LEN, help_text="The collectors' model key.")
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    primary_metric = models.CharField(
        max_length=100, blank=True, help_text="The metric the need score follows, e.g. accuracy."
    )
    higher_is_better = models.BooleanField(default=True)
    metric_floor = models.FloatField(
        null=True, blank=True, help_text="Performance never to fall past: retrain overdue."
    )
    max_age_days = models.FloatField(default=180.0, validators=[MinValueValidator(0.01)])
    min_retrain_interval_days = models.FloatField(default=7.0, validators=[MinValueValidator(0.0)])
    persistence_evaluations = models.PositiveSmallIntegerField(default=3)
    need_watch = models.FloatField(default=0.3, help_text="Need score from which to watch.")
    need_enter = models.FloatField(default=0.6, help_text="Need score that starts a retrain need.")
    need_exit = models.FloatField(default=0.4, help_text="Need score under which it clears.")
    min_gain_per_kgco2e = models.FloatField(
        null=True,
        blank=True,
        help_text="Metric points a retrain must win per kgCO2e; empty = no cost test.",
    )
    min_gain = models.FloatField(
        default=0.0, help_text="A retrain gaining no more than this is flagged as wasted."
    )
    # SCI for AI (docs/kpis.md §SCI for AI): the units the team declares for its two scores.
    sci_provider_unit = models.CharField(
        max_length=20,
        choices=SciProviderUnit.choices,
        default=SciProviderUnit.TRAINING_RUN,
        db_default=SciProviderUnit.TRAINING_RUN.value,
        help_text="Provider score (data preparation + training + evaluation) per this unit.",
    )
    sci_consumer_unit = models.CharField(
        max_length=20,
        choices=SciConsumerUnit.choices,
        default=SciConsumerUnit.THOUSAND_INFERENCES,
        db_default=SciConsumerUnit.THOUSAND_INFERENCES.value,
        help_text="Consumer score (inference) per this unit.",
    )

    class Meta:
        ordering = ["team", "key"]
        constraints = [
            models.UniqueConstraint(fields=["team", "key"], name="mlmodel_key_unique_per_team"),
            models.CheckConstraint(
                condition=models.Q(need_exit__lt=models.F("need_enter")),
                name="mlmodel_hysteresis_exit_below_enter",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.key}"


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    DEPLOYED = "deployed", "Deployed"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    """One trained artefact of a model. At most one version of a model is deployed at a time.

    ``baseline_value`` is the primary metric at deployment, the reference the decay score measures
    against; empty = the first labelled evaluation of this version.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=100)
    status = models.CharField(
        max_length=10, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE
    )
    trained_by = models.ForeignKey(
        "Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="produced_versions"
    )
    baseline_value = models.FloatField(null=True, blank=True)
    # The provider score's denominators when the model declares them as its unit.
    parameters = models.PositiveBigIntegerField(null=True, blank=True)
    training_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    trained_at = models.DateTimeField(
        default=timezone.now, help_text="End of training (data cut-off): staleness counts from it."
    )
    deployed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="version_unique_per_model"),
            models.UniqueConstraint(
                fields=["model"],
                condition=models.Q(status="deployed"),
                name="one_deployed_version_per_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"


class RunKind(models.TextChoices):
    DATA_PREPARATION = "data-prep", "Data preparation"
    TRAINING = "training", "Training"
    FINE_TUNING = "fine-tuning", "Fine-tuning"
    EVALUATION = "evaluation", "Evaluation"
    INFERENCE = "inference", "Inference service"


TRAINING_KINDS = (RunKind.TRAINING, RunKind.FINE_TUNING)


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Run(models.Model):
    """One training, fine-tuning, evaluation or inference-service run of a model.

    ``key`` is the collectors' run key: the run's energy and carbon are the rollups carrying it, on
    however many hosts and GPUs. ``functional_units`` counts the SCI functional unit it served
    (inferences, tokens, samples ...), set when the run is closed. ``recurrence`` names a recurring
    job (e.g. ``nightly-retrain``) so carbon-aware advice can compare its occurrences.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(
        ModelVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        help_text="The version served or evaluated (inference / evaluation runs).",
    )
    key = models.CharField(max_length=KEY_MAX_LEN, help_text="The collectors' run key.")
    kind = models.CharField(max_length=12, choices=RunKind.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    functional_unit = models.CharField(
        max_length=50, blank=True, help_text="SCI R, e.g. inference, token, sample, run."
    )
    functional_units = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    recurrence = models.CharField(max_length=100, blank=True)
    mlflow_run_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["model", "key"], name="run_key_unique_per_model"),
        ]
        indexes = [models.Index(fields=["model", "kind", "ended_at"], name="run_model_kind_idx")]

    def __str__(self) -> str:
        return f"{self.model} run {self.key} ({self.kind})"


class Evaluation(models.Model):
    """A metric measured (labelled) or estimated (e.g. CBPE) for a version over a time window."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="evaluations")
    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="evaluations"
    )
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    metric = models.CharField(max_length=100)
    value = models.FloatField()
    higher_is_better = models.BooleanField(default=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(help_text="When the evaluated data ends: the evidence time.")
    labelled = models.BooleanField(default=True, help_text="False: an estimate without labels.")
    samples = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "window_end"]
        indexes = [models.Index(fields=["model", "metric", "window_end"], name="eval_model_idx")]

    def __str__(self) -> str:
        return f"{self.model} {self.metric}={self.value:g} @ {self.window_end:%Y-%m-%d}"


class DriftReport(models.Model):
    """Data or prediction drift of a version over a window, one ``DriftFeature`` per feature.

    ``score`` is the importance-weighted drift score (0..1) computed on arrival.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="drift_reports")
    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField()
    score = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "window_end"]

    def __str__(self) -> str:
        return f"{self.model} drift {self.score:.2f} @ {self.window_end:%Y-%m-%d}"


class DriftFeature(models.Model):
    """One feature's drift statistic: sent by the client, or computed here from histograms."""

    report = models.ForeignKey(DriftReport, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=200)
    statistic = models.CharField(max_length=20, help_text="psi, js, wasserstein or a client name.")
    value = models.FloatField()
    threshold = models.FloatField(help_text="The value at which this feature counts as drifted.")
    importance = models.FloatField(null=True, blank=True)
    computed_by_server = models.BooleanField(default=False)
    reference_counts = models.JSONField(null=True, blank=True)
    current_counts = models.JSONField(null=True, blank=True)
    bin_edges = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["report", "feature"]
        constraints = [
            models.UniqueConstraint(fields=["report", "feature"], name="drift_feature_unique")
        ]

    def __str__(self) -> str:
        return f"{self.feature}: {self.statistic}={self.value:.3f}"


class Verdict(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    WATCH = "watch", "Watch"
    RECOMMENDED = "recommended", "Retrain recommended"
    OVERDUE = "overdue", "Retrain overdue"


class RetrainingAssessment(models.Model):
    """The current retraining need of one model, with its components (replaced on each recompute).

    Everything the verdict rests on is stored beside it, so a page can say *why*.
    """

    model = models.OneToOneField(MLModel, on_delete=models.CASCADE, related_name="assessment")
    version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    verdict = models.CharField(max_length=12, choices=Verdict.choices)
    need = models.FloatField(help_text="Combined need score R, 0..1.")
    perf_score = models.FloatField()
    drift_score = models.FloatField()
    age_score = models.FloatField()
    metric_value = models.FloatField(null=True, blank=True)
    baseline_value = models.FloatField(null=True, blank=True)
    age_days = models.FloatField(null=True, blank=True)
    need_active = models.BooleanField(default=False, help_text="Hysteresis state.")
    streak = models.PositiveSmallIntegerField(default=0)
    days_since_retrain = models.FloatField(null=True, blank=True)
    expected_energy_kwh = models.FloatField(null=True, blank=True)
    expected_kgco2e = models.FloatField(null=True, blank=True)
    expected_gain = models.FloatField(null=True, blank=True)
    reasons = models.JSONField(default=list)
    computed_at = models.DateTimeField(default=timezone.now)
    verdict_since = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.model}: {self.verdict} (R={self.need:.2f})"

    @property
    def gain_per_kgco2e(self) -> float | None:
        """Expected gain in points of the primary metric per expected kgCO2e of the retrain."""
        if self.expected_gain is None or not self.expected_kgco2e:
            return None
        return self.expected_gain / self.expected_kgco2e


class VerdictChange(models.Model):
    """An append-only history of verdict changes: what alerts and timelines read."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="verdict_changes")
    previous = models.CharField(max_length=12, choices=Verdict.choices, blank=True)
    verdict = models.CharField(max_length=12, choices=Verdict.choices)
    need = models.FloatField()
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "changed_at"]

    def __str__(self) -> str:
        return f"{self.model}: {self.previous or '-'} -> {self.verdict}"


class RetrainOutcome(models.Model):
    """What one retrain bought: metric before/after, energy and carbon spent, and efficiency.

    Recomputed (replaced) with the assessment, since the run's rollups may still change.
    """

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="outcome")
    previous_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    new_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    metric = models.CharField(max_length=100)
    value_before = models.FloatField()
    value_after = models.FloatField()
    gain = models.FloatField(help_text="Improvement in metric units (sign: better is positive).")
    energy_kwh = models.FloatField()
    kgco2e = models.FloatField()
    gain_per_kwh = models.FloatField(null=True)
    gain_per_kgco2e = models.FloatField(null=True)
    flagged = models.BooleanField(default=False, help_text="Gained too little for its energy.")
    reason = models.CharField(max_length=200, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.run}: {self.gain:+.4f} {self.metric}"
