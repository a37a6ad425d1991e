"""The Slurm area: jobs by wasted GPU-hours, and the organisation's identity mappings."""
