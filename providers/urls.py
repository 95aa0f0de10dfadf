from __future__ import annotations

from django.urls import path

from providers import views

urlpatterns = [
    path("", views.provider_list, name="providers"),
    path("new/", views.provider_form, name="provider-create"),
    path("model-options/", views.model_options, name="provider-model-options"),
    path("model-picker/", views.model_picker, name="provider-model-picker"),
    path("<int:pk>/model-picker/", views.model_picker, name="provider-model-picker"),
    path("<int:pk>/", views.provider_form, name="provider-edit"),
    path("<int:pk>/delete/", views.provider_delete, name="provider-delete"),
    path("<int:pk>/check/<str:check>/", views.provider_check, name="provider-check"),
    path("<int:pk>/status/", views.provider_status, name="provider-status"),
    path("<int:pk>/models/", views.provider_models, name="provider-models"),
]
