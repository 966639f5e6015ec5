from django.contrib import admin

from predictor.models import Stock


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("symbol", "bar_length", "time", "open", "high", "low", "close", "volume")
    list_filter = ("symbol", "bar_length", "exchange")
    date_hierarchy = "time"
    show_full_result_count = False  # counting millions of bars on every page is slow
