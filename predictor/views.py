"""Thin views: parse the request, call a selector, render."""

from django.shortcuts import render

from predictor import selectors


def index(request):
    """The stored series at a glance: what is loaded, from when to when."""
    return render(request, "predictor/index.html", {"series": selectors.stored_series()})
