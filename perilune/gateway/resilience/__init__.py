"""Resilience: circuit breakers, live health figures, retries and hedging per deployment.

Pure and clock-injected (except ``probe``, the reachability probe, and ``attempts``, which awaits the
caller's openers): the pipeline asks and reports; routing orders by it; the providers listing shows it.
"""

from perilune.gateway.resilience.attempts import Attempts, Try
from perilune.gateway.resilience.breaker import BreakerPolicy, CircuitBreaker, State
from perilune.gateway.resilience.classify import falls_through, is_context_overflow, is_deployment_failure
from perilune.gateway.resilience.health import DeploymentLike, Health, HealthPolicy, Status, policy_from_settings
from perilune.gateway.resilience.hedge import HedgePolicy
from perilune.gateway.resilience.probe import ReachabilityProbe
from perilune.gateway.resilience.retry import Clock, Deadline, RetryPolicy
from perilune.gateway.resilience.stats import DeploymentStats, Samples, Snapshot
from perilune.gateway.resilience.window import RollingCounter

__all__ = [
    "Attempts",
    "BreakerPolicy",
    "CircuitBreaker",
    "Clock",
    "Deadline",
    "DeploymentLike",
    "DeploymentStats",
    "Health",
    "HealthPolicy",
    "HedgePolicy",
    "ReachabilityProbe",
    "RetryPolicy",
    "RollingCounter",
    "Samples",
    "Snapshot",
    "State",
    "Status",
    "Try",
    "falls_through",
    "is_context_overflow",
    "is_deployment_failure",
    "policy_from_settings",
]
