from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "greenkpi.inventory"
    verbose_name = "Inventory"
