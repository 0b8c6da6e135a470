"""Typed request and response bodies of the HTTP API (pydantic; unknown fields are errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crossrec.serve.store import EVENT_TYPES

EventType = Literal["view", "click", "like", "dislike", "skip", "play", "rating"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # noqa: S101  (one list of event types)

Id = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(Strict):
    """One feedback event. ``value``: seconds played for ``play``, the rating (0.5-5) for
    ``rating``; ``ts``: client time in epoch seconds (default: when it arrives)."""

    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")
    user_id: str = Id
    item_id: str = Id
    type: EventType
    value: float | None = Field(None, ge=0, le=1e7)
    ts: float | None = Field(None, ge=0, le=1e11)

    @model_validator(mode="after")
    def _value_fits_type(self):
        if self.type == "rating" and (self.value is None or not 0.5 <= self.value <= 5):
            raise ValueError("a rating event needs value between 0.5 and 5")
        if self.type == "play" and self.value is None:
            raise ValueError("a play event needs value: the seconds played")
        return self


class EventsIn(Strict):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventResult(BaseModel):
    event_id: str
    status: Literal["stored", "duplicate"]


class EventsOut(BaseModel):
    stored: int
    duplicates: int
    results: list[EventResult]


class UserIn(Strict):
    """A new user: an optional id (default: generated) and what they like, in words."""

    user_id: str | None = Field(None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")
    likes: str = Field("", max_length=1000)


class UserOut(BaseModel):
    user_id: str
    likes: str


class UserSummary(BaseModel):
    user_id: str
    n_history: int
    likes: str
    top_categories: list[str]
    media: dict[str, int]


class UsersPage(BaseModel):
    total: int
    offset: int
    limit: int
    users: list[UserSummary]


class Because(BaseModel):
    reason: Literal["history", "likes", "popular"]
    item_id: str | None = None
    title: str | None = None
    medium: str | None = None
    weight: float | None = Field(None, description="a history item's share (0-1) of the "
                                 "recommended item's positive dot products with the history")
    modality: str | None = Field(None, description="the block of the content space that links "
                                 "the two items (text, image, audio) or 'collaborative'")
    text: str | None = None


class Item(BaseModel):
    item_id: str
    medium: str
    title: str
    snippet: str
    categories: list[str]
    media: dict[str, str] = Field(description="kind (image, audio, video) -> URL")
    score: float | None = None
    because: list[Because] | None = None


class ItemDetail(Item):
    popularity: int
    live: bool


class Recommendations(BaseModel):
    user_id: str
    model_version: str
    basis: Literal["history", "likes", "popular"]
    items: list[Item]


class Similar(BaseModel):
    item_id: str
    model_version: str
    items: list[Item]


class SearchResults(BaseModel):
    q: str
    model_version: str
    items: list[Item]


class ReloadIn(Strict):
    path: str | None = Field(None, max_length=4096, description="artifact folder (default: the "
                             "one being served, e.g. after `crossrec retrain --out` over it)")


class ReloadOut(BaseModel):
    previous_version: str
    version: str
    path: str
    items: int


class Problem(BaseModel):
    """Every 4xx: what is wrong, in one line, and where (for validation errors)."""

    error: str
    detail: list[dict] | None = None


__all__ = ["Because", "EventIn", "EventResult", "EventsIn", "EventsOut", "Item", "ItemDetail",
           "Problem", "Recommendations", "ReloadIn", "ReloadOut", "SearchResults", "Similar",
           "UserIn", "UserOut", "UserSummary", "UsersPage"]
