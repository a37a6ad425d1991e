from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "greenkpi.recommendations"
    verbose_name = "Recommendations and the savings ledger"
