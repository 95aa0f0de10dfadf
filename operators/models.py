from __future__ import annotations

from django.db import models

from operators.choices import Ceiling, OperatorJITMode


class OperatorQuerySet(models.QuerySet):
    def enabled(self) -> OperatorQuerySet:
        return self.filter(enabled=True)


class Operator(models.Model):
    """An LLM sub-agent: what it is for, its model, its tools and how far it may go."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True, help_text="What it is for: the orchestrator routes tasks on this.")
    system_prompt = models.TextField(blank=True)
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="operators")
    model = models.CharField(max_length=200, blank=True, help_text="Empty: the provider's default model.")
    tools = models.ManyToManyField("tools.Tool", blank=True, related_name="operators")
    ceiling = models.CharField(max_length=16, choices=Ceiling.choices, default=Ceiling.READ_ONLY)
    jit_mode = models.CharField(max_length=16, choices=OperatorJITMode.choices, default=OperatorJITMode.INHERIT)
    max_steps = models.PositiveIntegerField(default=20)
    token_budget = models.PositiveIntegerField(default=200_000, help_text="Tokens per run (0: no limit).")
    cost_budget = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, help_text="USD per run where the price is known (0: no limit)."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OperatorQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ceiling__in=Ceiling.values), name="operator_ceiling_known"),
            models.CheckConstraint(
                condition=models.Q(jit_mode__in=OperatorJITMode.values), name="operator_jit_mode_known"
            ),
        ]

    def __str__(self) -> str:
        return self.name
