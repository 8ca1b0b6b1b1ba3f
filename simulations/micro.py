"""The micro-adjustment scenario: page variations for shop visitors.

Visitors arrive with a device (mobile, desktop, tablet), a network (Wi-Fi,
cellular), the hour of day, the category they viewed last, how many minutes
ago, and how often they visited that category recently (a purchase-intent
signal). Each action is one variation of a product page, combining three
slots: the call-to-action wording, the image prominence and the layout.
Namespaces, action ids and action features match the server's example
configuration ``serving/examples/micro_adjustments.yaml``, so the same
visitors can be sent to a running server.

The hidden click model (:class:`ClickModel`) is a logistic model with
interactions between context and action. With its defaults, a uniformly
random page gets about 3.5% clicks, the best page per visitor about 7%, and
nine in ten visitors have a best page below 12.5%. The marketer's rules of
the example configuration capture the device effects but misread the
repeat visitors and ignore recency, which is the headroom a learning policy
can find.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from bandit.baseline import BaselineRules, Condition, Rule
from bandit.features import Action, Namespaces
from simulations.scenario import RewardTiming, Scenario

__all__ = [
    "ClickModel",
    "MicroAdjustmentScenario",
    "CTA_VARIANTS",
    "IMAGE_VARIANTS",
    "LAYOUT_VARIANTS",
    "CATEGORIES",
    "DRIFTED_CLICK_MODEL",
    "compose_action_id",
    "recency_bucket",
]

CTA_VARIANTS = ("cta_buy_now", "cta_add_to_cart", "cta_see_details")
"""Call-to-action wordings: generic, promotional push, related-product details."""
IMAGE_VARIANTS = ("img_standard", "img_large")
LAYOUT_VARIANTS = ("layout_full", "layout_simplified")
CATEGORIES = ("shoes", "bags", "outerwear", "knitwear", "accessories")
DEVICES = ("mobile", "desktop", "tablet")
NETWORKS = ("wifi", "cellular")

_NO_VIEW_MINUTES = 1440.0
"""``minutes_since_view`` reported for a visitor with no earlier view (one day)."""


def compose_action_id(cta: str, image: str, layout: str) -> str:
    """Return the combined action id of one choice per slot, ``CTA|IMAGE|LAYOUT``."""
    return f"{cta}|{image}|{layout}"


def recency_bucket(minutes: float) -> str:
    """Return the recency bucket of ``minutes`` since the last category view."""
    if minutes >= _NO_VIEW_MINUTES:
        return "never"
    if minutes < 5:
        return "under_5m"
    if minutes < 30:
        return "5m_to_30m"
    if minutes < 120:
        return "30m_to_2h"
    return "over_2h"


@dataclass(frozen=True)
class ClickModel:
    """Hidden logistic click model of the micro-adjustment scenario.

    The click probability of action ``a`` for context ``x`` is
    ``sigmoid(logit(base_rate) + context_effect(x) + action_effect(x, a))``.
    Every effect is on the logit scale and relative to the generic page
    (``cta_buy_now``, ``img_standard``, ``layout_full``).

    Parameters
    ----------
    base_rate : float
        Click probability of the generic page for a phone visitor outside
        the evening with no recent visits.
    desktop_effect, tablet_effect : float
        Context effects of the device, relative to mobile.
    evening_effect : float
        Context effect of an hour in [18, 23).
    intent_effect : float
        Context effect per recent visit to the same category, for up to
        ``intent_cap`` visits.
    intent_cap : int
        Visits beyond this add nothing, to the context or to the cart wording.
    large_image : dict of str to float
        Effect of ``img_large`` per device segment (keys ``mobile_wifi``,
        ``mobile_cellular``, ``desktop``, ``tablet``): larger images help
        phones on Wi-Fi and hurt phones on a slow cellular network.
    simplified_layout : dict of str to float
        Effect of ``layout_simplified`` per device segment.
    details_recent : float
        Effect of ``cta_see_details`` (related products made prominent) when
        the last category view was less than 5 minutes ago.
    details_otherwise : float
        Effect of ``cta_see_details`` otherwise.
    details_large_recent : float
        Extra effect of ``cta_see_details`` with ``img_large`` when the last
        view was less than 5 minutes ago.
    cart_per_visit : float
        Effect of the promotional ``cta_add_to_cart`` per recent visit to the
        same category, up to ``intent_cap`` visits.
    cart_offset : float
        Effect of ``cta_add_to_cart`` at zero visits.
    """

    base_rate: float = 0.025
    desktop_effect: float = 0.15
    tablet_effect: float = 0.05
    evening_effect: float = 0.1
    intent_effect: float = 0.03
    intent_cap: int = 4
    large_image: dict[str, float] | None = None
    simplified_layout: dict[str, float] | None = None
    details_recent: float = 1.1
    details_otherwise: float = -0.3
    details_large_recent: float = 0.3
    cart_per_visit: float = 0.35
    cart_offset: float = -0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.base_rate < 1.0:
            raise ValueError(f"ClickModel.base_rate must be in (0, 1), got {self.base_rate!r}")
        if not isinstance(self.intent_cap, int) or isinstance(self.intent_cap, bool) or self.intent_cap < 0:
            raise ValueError(f"ClickModel.intent_cap must be an int >= 0, got {self.intent_cap!r}")
        defaults = {
            "large_image": {"mobile_wifi": 0.4, "mobile_cellular": -0.5, "desktop": -0.2, "tablet": 0.2},
            "simplified_layout": {"mobile_wifi": 0.3, "mobile_cellular": 0.5, "desktop": -0.3, "tablet": 0.0},
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            table = {key: float(number) for key, number in (default if value is None else value).items()}
            if set(table) != set(default):
                raise ValueError(f"ClickModel.{name} must have the keys {sorted(default)}, got {sorted(table)}")
            for key, number in table.items():
                if not math.isfinite(number):
                    raise ValueError(f"ClickModel.{name}[{key!r}] must be finite, got {number!r}")
            object.__setattr__(self, name, table)
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"ClickModel.{item.name} must be finite, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the coefficients as JSON-ready data."""
        return asdict(self)


DRIFTED_CLICK_MODEL = ClickModel(
    large_image={"mobile_wifi": -0.4, "mobile_cellular": -0.6, "desktop": 0.5, "tablet": 0.3},
    simplified_layout={"mobile_wifi": 0.3, "mobile_cellular": 0.5, "desktop": -0.3, "tablet": 0.0},
    details_recent=0.0,
    details_otherwise=-0.3,
    details_large_recent=0.0,
    cart_per_visit=0.1,
    cart_offset=0.7,
)
"""A changed season: a sale makes the add-to-cart wording the best for everyone.

Large images now suit desktops and tablets and no longer phones, and the
details wording has lost its pull on recent viewers. The best page changes
for almost every visitor, so a policy that stopped learning keeps serving
pages that are now among the worst.
"""

_BASELINE_RULES = (
    # The marketer's rules of the server's example configuration.
    Rule(
        (Condition("device.type", "eq", "mobile"), Condition("device.network", "eq", "wifi")),
        "cta_buy_now|img_large|layout_simplified",
    ),
    Rule((Condition("device.type", "eq", "mobile"),), "cta_buy_now|img_standard|layout_simplified"),
    Rule((Condition("activity.visits_same_category", "ge", 3),), "cta_see_details|img_large|layout_full"),
)
_BASELINE_DEFAULT = "cta_buy_now|img_standard|layout_full"


class MicroAdjustmentScenario(Scenario):
    """Shop visitors and twelve page variations under a hidden click model.

    Context namespaces: ``device`` {``type``, ``network``}, ``time``
    {``hour``}, ``activity`` {``last_category``, ``minutes_since_view``,
    ``recency``, ``visits_same_category``}. ``recency`` is the bucket of
    ``minutes_since_view`` (``under_5m``, ``5m_to_30m``, ``30m_to_2h``,
    ``over_2h``, ``never``), the kind of feature a service computes for a
    linear learner. Action ids are ``CTA|IMAGE|LAYOUT`` (for example
    ``cta_see_details|img_large|layout_simplified``); each action has the
    namespaces ``cta`` {``wording``}, ``image`` {``prominence``} and
    ``layout`` {``style``}.

    Parameters
    ----------
    click_model : ClickModel, optional
        The hidden response model; :class:`ClickModel` defaults when omitted.
    mobile_share, tablet_share : float
        Shares of phones and tablets among visitors; desktops are the rest.
    mobile_wifi_share, tablet_wifi_share, desktop_wifi_share : float
        Share of each device on Wi-Fi; the rest are on a cellular network.
    viewed_share : float
        Share of visitors who viewed a category before.
    median_minutes : float
        Median minutes since that view (log-normal with sigma 1.5).
    mean_visits : float
        Mean recent visits to the same category (geometric, at least 1) for
        visitors who viewed one.
    timing : RewardTiming, optional
        Delays and losses of reward reports.
    """

    name: ClassVar[str] = "micro"

    # The device and the recent activity decide which page works; the hour
    # changes every page's click rate alike, so crossing it with the actions
    # would only add weights to learn.
    interactions = (("context.device", "action.*"), ("context.activity", "action.*"))

    def __init__(
        self,
        click_model: ClickModel | None = None,
        *,
        mobile_share: float = 0.55,
        tablet_share: float = 0.1,
        mobile_wifi_share: float = 0.6,
        tablet_wifi_share: float = 0.85,
        desktop_wifi_share: float = 0.97,
        viewed_share: float = 0.8,
        median_minutes: float = 12.0,
        mean_visits: float = 2.2,
        timing: RewardTiming | None = None,
    ) -> None:
        super().__init__(timing)
        if click_model is not None and not isinstance(click_model, ClickModel):
            raise TypeError(f"click_model must be a ClickModel, got {type(click_model).__name__}")
        shares = {
            "mobile_share": mobile_share,
            "tablet_share": tablet_share,
            "mobile_wifi_share": mobile_wifi_share,
            "tablet_wifi_share": tablet_wifi_share,
            "desktop_wifi_share": desktop_wifi_share,
            "viewed_share": viewed_share,
        }
        for name, value in shares.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if mobile_share + tablet_share > 1.0:
            raise ValueError(f"mobile_share + tablet_share must be at most 1, got {mobile_share + tablet_share!r}")
        if not median_minutes > 0:
            raise ValueError(f"median_minutes must be > 0, got {median_minutes!r}")
        if not mean_visits >= 1:
            raise ValueError(f"mean_visits must be >= 1, got {mean_visits!r}")

        self.click_model = click_model or ClickModel()
        self.mobile_share = float(mobile_share)
        self.tablet_share = float(tablet_share)
        self.mobile_wifi_share = float(mobile_wifi_share)
        self.tablet_wifi_share = float(tablet_wifi_share)
        self.desktop_wifi_share = float(desktop_wifi_share)
        self.viewed_share = float(viewed_share)
        self.median_minutes = float(median_minutes)
        self.mean_visits = float(mean_visits)

        combos = list(itertools.product(CTA_VARIANTS, IMAGE_VARIANTS, LAYOUT_VARIANTS))
        self._actions = tuple(
            Action(
                compose_action_id(cta, image, layout),
                {
                    "cta": {"wording": cta.removeprefix("cta_")},
                    "image": {"prominence": image.removeprefix("img_")},
                    "layout": {"style": layout.removeprefix("layout_")},
                },
            )
            for cta, image, layout in combos
        )
        self._large = np.array([image == "img_large" for _, image, _ in combos], dtype=float)
        self._simplified = np.array([layout == "layout_simplified" for _, _, layout in combos], dtype=float)
        self._details = np.array([cta == "cta_see_details" for cta, _, _ in combos], dtype=float)
        self._cart = np.array([cta == "cta_add_to_cart" for cta, _, _ in combos], dtype=float)
        self._base_logit = math.log(self.click_model.base_rate / (1.0 - self.click_model.base_rate))

    def actions(self) -> tuple[Action, ...]:
        """Return the twelve page variations, ``cta_buy_now|img_standard|layout_full`` first."""
        return self._actions

    def slots(self) -> dict[str, tuple[Action, ...]]:
        """Return the variants of each slot with their features, in action-id order."""
        return {
            "cta": tuple(Action(v, {"cta": {"wording": v.removeprefix("cta_")}}) for v in CTA_VARIANTS),
            "image": tuple(Action(v, {"image": {"prominence": v.removeprefix("img_")}}) for v in IMAGE_VARIANTS),
            "layout": tuple(Action(v, {"layout": {"style": v.removeprefix("layout_")}}) for v in LAYOUT_VARIANTS),
        }

    def compose_action(self, choices: Sequence[str]) -> str:
        """Return the action id ``CTA|IMAGE|LAYOUT`` of one variant per slot."""
        return compose_action_id(*choices)

    def sample_context(self, rng: np.random.Generator, round_index: int) -> Namespaces:
        """Draw one visitor."""
        u = rng.random()
        if u < self.mobile_share:
            device, wifi_share = "mobile", self.mobile_wifi_share
        elif u < self.mobile_share + self.tablet_share:
            device, wifi_share = "tablet", self.tablet_wifi_share
        else:
            device, wifi_share = "desktop", self.desktop_wifi_share
        network = "wifi" if rng.random() < wifi_share else "cellular"
        # Traffic peaks in the evening: a flat day mixed with a bump around 20:00.
        if rng.random() < 0.35:
            hour = int(np.clip(round(rng.normal(20.0, 1.5)), 0, 23))
        else:
            hour = int(rng.integers(24))
        if rng.random() < self.viewed_share:
            category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
            minutes = min(self.median_minutes * math.exp(1.5 * rng.standard_normal()), _NO_VIEW_MINUTES - 1.0)
            visits = float(rng.geometric(1.0 / self.mean_visits))
        else:
            category, minutes, visits = "none", _NO_VIEW_MINUTES, 0.0
        return {
            "device": {"type": device, "network": network},
            "time": {"hour": float(hour)},
            "activity": {
                "last_category": category,
                "minutes_since_view": round(minutes, 2),
                "recency": recency_bucket(minutes),
                "visits_same_category": visits,
            },
        }

    def segment(self, context: Namespaces) -> str:
        """Return ``mobile-wifi``, ``mobile-cellular``, ``desktop`` or ``tablet``."""
        device = context["device"]["type"]
        if device == "mobile":
            return f"mobile-{context['device']['network']}"
        return str(device)

    def expected_rewards(self, context: Namespaces, round_index: int) -> np.ndarray:
        """Return the click probability of each of the twelve actions."""
        return self.click_probabilities(self.click_model, context)

    def click_probabilities(self, model: ClickModel, context: Namespaces) -> np.ndarray:
        """Return the click probability of each action under ``model``."""
        device = context["device"]["type"]
        network = context["device"]["network"]
        hour = float(context["time"]["hour"])
        minutes = float(context["activity"]["minutes_since_view"])
        visits = min(float(context["activity"]["visits_same_category"]), float(model.intent_cap))
        key = f"mobile_{network}" if device == "mobile" else device

        context_effect = model.evening_effect * (18.0 <= hour < 23.0) + model.intent_effect * visits
        if device == "desktop":
            context_effect += model.desktop_effect
        elif device == "tablet":
            context_effect += model.tablet_effect

        recent = minutes < 5.0
        details = model.details_recent if recent else model.details_otherwise
        action_effect = (
            model.large_image[key] * self._large  # type: ignore[index]
            + model.simplified_layout[key] * self._simplified  # type: ignore[index]
            + details * self._details
            + (model.details_large_recent * recent) * self._details * self._large
            + (model.cart_offset + model.cart_per_visit * visits) * self._cart
        )
        logits = self._base_logit + context_effect + action_effect
        return 1.0 / (1.0 + np.exp(-logits))

    def baseline_rules(self) -> BaselineRules:
        """Return the marketer's rules of the server's example configuration."""
        return BaselineRules(_BASELINE_RULES, _BASELINE_DEFAULT, tuple(a.id for a in self._actions))

    def describe(self) -> dict[str, Any]:
        """Return the scenario's parameters as JSON-ready data."""
        return {
            **super().describe(),
            "click_model": self.click_model.to_dict(),
            "mobile_share": self.mobile_share,
            "tablet_share": self.tablet_share,
            "mobile_wifi_share": self.mobile_wifi_share,
            "tablet_wifi_share": self.tablet_wifi_share,
            "desktop_wifi_share": self.desktop_wifi_share,
            "viewed_share": self.viewed_share,
            "median_minutes": self.median_minutes,
            "mean_visits": self.mean_visits,
        }
