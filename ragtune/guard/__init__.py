"""Guardrails: denied topics and length on the way in; injected instructions in passages."""

from ragtune.guard.injection import INJECTION_PATTERNS, find_injections, neutralise
from ragtune.guard.topics import DeniedTopic, InputDecision, InputGuard

__all__ = [
    "INJECTION_PATTERNS",
    "DeniedTopic",
    "InputDecision",
    "InputGuard",
    "find_injections",
    "neutralise",
]
