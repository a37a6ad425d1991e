"""Every threshold and device constant the detectors use, with its source (docs/advice.md).

Pure: no Django. Changing one changes what is recommended, so each is named, documented and
tested through the hand-worked examples of tests/recommendations/test_detectors.py.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_YEAR = 8766.0  # Julian year (365.25 d), as the SCI lifetime in docs/kpis.md
HISTORY_DAYS = 28  # the window every detector reads (four weeks: weekly patterns twice over)


@dataclass(frozen=True)
class Gpu:
    """A GPU family's power model and throughput: P(u) = idle_w + (max_w - idle_w) x u."""

    family: str
    idle_w: float
    max_w: float  # board power (TDP) from the vendor's datasheet
    fp16_tflops: float  # dense FP16/BF16 tensor throughput from the vendor's datasheet


# Datasheets: NVIDIA H100 Tensor Core GPU (SXM5: 700 W, 989 TFLOPS dense BF16/FP16; 1,979 with
# sparsity), NVIDIA A100 (SXM4: 400 W, 312 TFLOPS dense FP16), NVIDIA L4 (72 W, 121 TFLOPS dense
# FP16; 242 with sparsity). Idle powers are typical readings of an idle board (no vendor figure):
# an assumption, the same the demo fleet simulates.
GPUS = {
    "H100": Gpu("H100", idle_w=70.0, max_w=700.0, fp16_tflops=989.0),
    "A100": Gpu("A100", idle_w=55.0, max_w=400.0, fp16_tflops=312.0),
    "L4": Gpu("L4", idle_w=16.0, max_w=72.0, fp16_tflops=121.0),
}
LARGE_GPUS = ("H100", "A100")  # what the right-size detector looks at
SMALL_GPU = "L4"  # the smaller device it estimates against


def gpu_family(model_name: str) -> str | None:
    """ "NVIDIA H100 80GB HBM3" -> "H100"; None for a GPU without a power model here."""
    upper = model_name.upper()
    return next((family for family in GPUS if family in upper), None)


# 1. Right-size. "Low" is the registry's low-utilization KPI (docs/kpis.md): a device-hour under
# 30 % busy. "Most of the time": at least half of the owner's GPU-hours with a reading.
LOW_UTILIZATION = 0.30
MOST_OF_THE_TIME = 0.5
RIGHT_SIZE_TARGET_UTILIZATION = 0.8  # how full the smaller GPUs may run (headroom for peaks)
RIGHT_SIZE_MIN_GPU_H = 24.0  # below a GPU-day in the window there is nothing to size

# 2. Idle allocations: an owner whose allocated GPU-hours are mostly idle.
IDLE_SHARE_MIN = 0.5
IDLE_MIN_GPU_H = 24.0
AUTO_STOP_IDLE_MINUTES = 30  # what the action proposes (a notebook culler / Slurm idle timeout)
SLURM_WASTE_SHARE_MIN = 0.25  # an account whose jobs hold GPUs idle a quarter of their time

# 3. Retraining cadence: most retrains under the model's own floor (its retraining policy).
RETRAIN_MIN_COUNT = 4  # "recurring": at least four retrains in the window
RETRAIN_INTERVAL_FACTOR_MAX = 30  # never propose more than 30x the current interval

# 5. Always-on serving: a serving run averaging under one request a minute is near zero.
NEAR_ZERO_REQUESTS_PER_H = 60.0
SERVING_MIN_RUNS = 3

# 6. Hyper-parameter search: a burst of short, equal training runs of one model.
SEARCH_BURST_H = 24.0  # runs started within this long of the burst's first
SEARCH_MIN_RUNS = 10
SEARCH_MAX_MEDIAN_H = 2.0
SEARCH_MAX_ENERGY_CV = 0.25  # equal budgets (no early stopping): a grid or random search
# Early stopping / Bayesian search: Hyperband reports 5x-30x speed-ups over random search (Li et
# al., JMLR 18(185), 2018); we claim a conservative half of the search's energy.
SEARCH_SAVING_FRACTION = 0.5

# Dismissed findings come back when the evidence changes materially (docs/advice.md, §3).
MATERIAL_FACTOR = 1.5  # the estimated annual saving grew by half ...
MATERIAL_MIN_KWH = 100.0  # ... and by at least 100 kWh a year
MATERIAL_MIN_KG = 10.0  # (carbon-only findings, shift: 10 kgCO2e a year)

# "High value" for the daily digest: at least this much a year.
HIGH_VALUE_KWH = 1000.0
HIGH_VALUE_KG = 100.0
