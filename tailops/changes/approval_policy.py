"""How many people must approve a plan: the risk rule and the inventory-group rules, strictest wins.

Why: "prod needs two people, dev low-risk changes need nobody" is a fact about the
hosts a plan touches, not about the playbook alone. The requirement is decided here,
once, at plan time, from the inventory the plan pins (``ansible-inventory`` through
:func:`tailops.changes.nodes.shards.inventory_groups`), and stored with the plan (and in
its id's canonical content), so a config edit between plan and apply can never lower
it. At approve and apply time :func:`effective` re-applies the *current* config to the
host groups recorded with the plan (the inventory is pinned by its snapshot, so they
are still the truth) and the stricter of the two counts.

The rules:

* the risk rule: ``changes.required_approvals.<risk>`` distinct people, or no person
  when ``changes.approval.low`` is ``auto`` (low risk only);
* a group rule (``changes.group_approvals``) for a group any host of the plan is in: a
  count raises the requirement (the maximum over every host, every group and the risk
  rule wins); ``auto`` (low risk only; refused for high and critical in the config)
  lets the plan be approved by policy only when EVERY host of the plan is in a group
  whose rule says ``auto`` for the risk and no rule anywhere asks for a count;
* a plan whose hosts are unknown (the check run matched none) is never approved by a
  group's ``auto``.

What it must never do: let a group rule lower the risk rule's count, approve by policy
a plan with a host outside every auto group or a high/critical-risk plan, or accept a
rule for a group the inventory does not have (a typo would silently weaken the policy:
it is a :class:`~tailops.errors.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from tailops.changes.nodes import shards
from tailops.config import ChangesSettings
from tailops.errors import ConfigError
from tailops.models import Model

__all__ = [
    "ApprovalRequirement",
    "RuleHit",
    "decide",
    "effective",
    "read_groups",
    "requirement_for_hosts",
    "requirement_from",
]

_SHOWN_HOSTS = 5


class RuleHit(Model):
    """One rule that set (or shaped) the requirement, and the plan's hosts it covers."""

    rule: str = Field(description="e.g. 'group prod', 'changes.required_approvals.low', 'changes.approval.low'.")
    count: int | None = Field(description="Distinct people it asks for; None for auto (approved by policy).")
    hosts: list[str] = Field(default_factory=list, description="The plan's hosts this rule covers (group rules).")

    def describe(self) -> str:
        if not self.hosts:
            return self.rule
        shown = ", ".join(self.hosts[:_SHOWN_HOSTS])
        more = f" and {len(self.hosts) - _SHOWN_HOSTS} more" if len(self.hosts) > _SHOWN_HOSTS else ""
        return f"{self.rule} ({shown}{more})"


class ApprovalRequirement(Model):
    """What a plan needs before it may be applied, and which rule says so."""

    required: int = Field(description="Distinct people who must approve; 0 = approved by policy (auto).")
    risk: str
    decided_by: list[RuleHit] = Field(description="The rule(s) that set the count (the strictest).")
    not_auto: list[str] = Field(
        default_factory=list,
        description="Hosts outside every auto group, when other hosts of the plan were in one.",
    )
    tightened: bool = Field(False, description="The current config asks for more than the plan recorded.")
    host_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="The plan's hosts -> their inventory groups (recorded at plan time)."
    )
    inventory_groups: list[str] | None = Field(
        None, description="Every group of the pinned inventory (None: not read, no group rule was configured)."
    )

    @property
    def auto(self) -> bool:
        return self.required == 0

    @property
    def approvals_needed(self) -> int:
        """Live approvals apply needs: the people, or the one approval recorded by the policy."""
        return max(1, self.required)

    def summary(self) -> str:
        """e.g. '2 approvals: group prod (web-1, web-2)' or 'auto: group dev (dev-1); no person approves'."""
        rules = "; ".join(hit.describe() for hit in self.decided_by)
        if self.auto:
            return f"auto: {rules}; approved by policy, no person approves"
        people = f"{self.required} approval{'s' if self.required != 1 else ''}"
        extra = ""
        if self.not_auto:
            shown = ", ".join(self.not_auto[:_SHOWN_HOSTS])
            more = f" and {len(self.not_auto) - _SHOWN_HOSTS} more" if len(self.not_auto) > _SHOWN_HOSTS else ""
            extra = f" (not auto: {shown}{more} in no auto group)"
        tightened = " (config tightened since planning)" if self.tightened else ""
        return f"{people}: {rules}{extra}{tightened}"

    def canonical(self) -> dict[str, Any]:
        """What a plan id covers of it: the count and the rules that set it."""
        return {
            "required": self.required,
            "rules": [[hit.rule, hit.count, sorted(hit.hosts)] for hit in self.decided_by],
        }


def _value(rule: Any, risk: str) -> int | str | None:
    value: int | str | None = getattr(rule, risk, None)
    return value


def decide(
    settings: ChangesSettings,
    risk: str,
    host_groups: Mapping[str, Iterable[str]],
    inventory_groups: Collection[str] | None = None,
) -> ApprovalRequirement:
    """The requirement of a plan of ``risk`` on the hosts of ``host_groups`` (host -> its groups).

    ``inventory_groups`` (every group of the inventory) makes a rule for a group the
    inventory does not have a ConfigError; None skips that check (no inventory was read)."""
    rules = {rule.group: rule for rule in settings.group_approvals}
    if inventory_groups is not None:
        unknown = sorted(set(rules) - set(inventory_groups))
        if unknown:
            listed = ", ".join(sorted(inventory_groups)[:20]) or "none"
            raise ConfigError(
                f"changes.group_approvals names group(s) the inventory does not have: {', '.join(unknown)} "
                f"(inventory groups: {listed}). A rule for a missing group would silently not apply.",
                hint="Fix the group name in changes.group_approvals, or remove the rule.",
            )
    groups = {host: sorted(set(names)) for host, names in sorted(host_groups.items())}
    baseline = int(getattr(settings.required_approvals, risk, 1))
    risk_auto = risk == "low" and settings.approval.low == "auto"
    counts: dict[str, tuple[int, list[str]]] = {}
    autos: dict[str, list[str]] = {}
    for host, names in groups.items():
        for name in names:
            rule = rules.get(name)
            value = _value(rule, risk) if rule is not None else None
            if value is None:
                continue
            if value == "auto":
                autos.setdefault(name, []).append(host)
            else:
                counts.setdefault(name, (int(value), []))[1].append(host)
    known = sorted(inventory_groups) if inventory_groups is not None else None

    def make(required: int, hits: list[RuleHit], not_auto: list[str] | None = None) -> ApprovalRequirement:
        return ApprovalRequirement(
            required=required,
            risk=risk,
            decided_by=hits,
            not_auto=not_auto or [],
            host_groups=groups,
            inventory_groups=known,
        )

    baseline_hit = RuleHit(rule=f"changes.required_approvals.{risk}", count=baseline)
    if counts:
        top = max(count for count, _ in counts.values())
        required = max(top, baseline)
        hits = [
            RuleHit(rule=f"group {name}", count=count, hosts=hosts)
            for name, (count, hosts) in sorted(counts.items())
            if count == required
        ]
        return make(required, hits or [baseline_hit])
    if risk_auto:
        return make(0, [RuleHit(rule=f"changes.approval.{risk}", count=None)])
    covered = {host for hosts in autos.values() for host in hosts}
    outside = [host for host in groups if host not in covered]
    if groups and not outside:
        return make(
            0, [RuleHit(rule=f"group {name}", count=None, hosts=hosts) for name, hosts in sorted(autos.items())]
        )
    return make(baseline, [baseline_hit], outside if covered else None)


def read_groups(settings: ChangesSettings, inventory: Path) -> dict[str, set[str]] | None:
    """The inventory's groups (group -> hosts, children included) when a group rule is configured;
    None (nothing read) without one. Blocking: runs ``ansible-inventory``."""
    if not settings.group_approvals:
        return None
    return shards.inventory_groups(inventory)


def requirement_from(
    settings: ChangesSettings, risk: str, hosts: Iterable[str], members: Mapping[str, set[str]] | None
) -> ApprovalRequirement:
    """The requirement for ``hosts`` given the inventory's groups ``members`` (:func:`read_groups`)."""
    names = sorted(set(hosts))
    if members is None:
        return decide(settings, risk, {host: [] for host in names})
    wanted = set(names)
    host_groups: dict[str, list[str]] = {host: [] for host in names}
    for group, group_hosts in members.items():
        for host in group_hosts & wanted:
            host_groups[host].append(group)
    return decide(settings, risk, host_groups, inventory_groups=members.keys())


def requirement_for_hosts(
    settings: ChangesSettings, risk: str, hosts: Iterable[str], inventory: Path
) -> ApprovalRequirement:
    """The requirement for ``hosts`` under the inventory ``inventory``.

    Reads the inventory's groups (``ansible-inventory``, blocking) only when a group rule is
    configured; without one the risk rule decides and nothing is read."""
    return requirement_from(settings, risk, hosts, read_groups(settings, inventory))


def effective(
    settings: ChangesSettings,
    recorded: ApprovalRequirement | None,
    risk: str,
    hosts: Iterable[str],
    inventory: Callable[[], Path],
) -> ApprovalRequirement:
    """At approve and apply time: the stricter of the plan's recorded requirement and what the
    current config asks of the same hosts.

    The current config is applied to the host groups recorded with the plan (the inventory is
    pinned by its snapshot, so they are still the truth). When the plan recorded no groups
    (no group rule was configured when it was planned, or it predates recorded requirements)
    and a group rule is configured now, the inventory (``inventory()``) is read again: a rule
    added after planning still applies."""
    if settings.group_approvals and (recorded is None or recorded.inventory_groups is None):
        current = requirement_for_hosts(settings, risk, hosts, inventory())
    elif recorded is None:
        current = decide(settings, risk, {host: [] for host in hosts})
    else:
        current = decide(settings, risk, recorded.host_groups, recorded.inventory_groups)
    if recorded is None:
        return current
    if current.required > recorded.required:
        return current.model_copy(update={"tightened": True})
    return recorded
