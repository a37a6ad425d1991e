from __future__ import annotations

from django.contrib import admin

from greenkpi.carbon.models import ElectricityTariff, GridIntensityHourly, MarketFactor


@admin.register(GridIntensityHourly)
class GridIntensityHourlyAdmin(admin.ModelAdmin):
    list_display = ("zone", "hour", "intensity_lifecycle_g_per_kwh", "renewable_share", "estimated")
    list_filter = ("zone", "estimated")


@admin.register(MarketFactor)
class MarketFactorAdmin(admin.ModelAdmin):
    list_display = ("site", "valid_from", "valid_to", "intensity_g_per_kwh", "instrument")


@admin.register(ElectricityTariff)
class ElectricityTariffAdmin(admin.ModelAdmin):
    list_display = ("site", "valid_from", "valid_to", "price_per_kwh", "currency")
