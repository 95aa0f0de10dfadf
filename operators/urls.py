from __future__ import annotations

from django.urls import path

from operators import views, webhooks

urlpatterns = [
    path("operators/", views.operator_list, name="operators"),
    path("operators/new/", views.operator_form, name="operator-create"),
    path("operators/<int:pk>/", views.operator_form, name="operator-edit"),
    path("operators/<int:pk>/delete/", views.operator_delete, name="operator-delete"),
    path("tasks/", views.tasks, name="tasks"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/plan/approve/", views.run_plan_approve, name="run-plan-approve"),
    path("runs/<int:pk>/plan/reject/", views.run_plan_reject, name="run-plan-reject"),
    path("runs/<int:pk>/reply/", views.run_reply, name="run-reply"),
    path("schedules/", views.schedules, name="schedules"),
    path("schedules/<int:pk>/delete/", views.schedule_delete, name="schedule-delete"),
    path("schedules/<int:pk>/toggle/", views.schedule_toggle, name="schedule-toggle"),
    path("webhooks/", views.webhooks_page, name="webhooks"),
    path("webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:pk>/toggle/", views.webhook_toggle, name="webhook-toggle"),
    path("hooks/<slug:name>/", webhooks.receive_webhook, name="webhook-receive"),
]
