"""Naming an exchange's conversation before its answer goes out, so that every recorded answer,
streamed or not, carries ``x-outlast-conversation-id``.

The ingester threads by *heads* (:mod:`outlast.store.threads`): a conversation's head is the
hash of every message it holds, and a request continues the conversation whose head is the hash
of one of its prefixes ending with an answer. The gateway knows the heads of what it committed
itself, so it can find the conversation from the request alone, in memory:

- a request with no earlier answer in it begins a conversation: a new id, at once;
- otherwise its prefix hashes are looked up, longest first, in a bounded LRU of heads filled
  when exchanges are committed (head after the answer -> conversation). A conversation whose
  head a request extends is *claimed* by that request until its answer is committed (the head
  moves on) or it fails without one (the claim is released). A request that extends an older
  point, or a point another request in flight has claimed, branches off (a regenerated answer,
  an edited message): a new conversation holding its whole history, as the ingester would make;
- only when some prefix is unknown here (the gateway restarted, the LRU forgot it, another
  replica or an import stored it) is the database asked, off the event loop, which heads are
  current; what it does not know is remembered as unknown for ``forget_after`` seconds, so a
  client that always sends a made-up history (few-shot examples) costs one query, not one a
  request. If the database does not answer, no id is given and the ingester threads the
  exchange itself, as before: a wrong id would split the conversation for good.

The recorder journals the name with the exchange, and the ingester threads an exchange that
names its conversation into exactly that one (:func:`outlast.store.threads.place`), so the
store always agrees with what the response said.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from outlast.store.records import answer_hash, message_hashes
from outlast.store.threads import new_conversation_id

if TYPE_CHECKING:
    from outlast.routing.router import Exchange

log = logging.getLogger("outlast.recorder")

Lookup = Callable[[Sequence[str]], dict[str, str]]  # hashes -> {hash: conversation whose head it is}


class _Claim:
    """A request in flight continues ``conversation`` from its head ``head``; ``asked`` is the hash
    of the request's messages (the head once the answer is added is computed from it)."""

    __slots__ = ("asked", "conversation", "exchange_id", "head")

    def __init__(self, exchange_id: str, conversation: str, head: str, asked: str) -> None:
        self.exchange_id = exchange_id
        self.conversation = conversation
        self.head = head
        self.asked = asked


class ConversationNames:
    """``await names.name(exchange)`` before the response starts; ``names.committed(exchange)``
    when the recorder commits it. Used on the event loop only.

    ``lookup(hashes)`` asks the store which of ``hashes`` are a conversation's head now
    (``None``: never ask). ``capacity`` bounds the heads and conversations remembered;
    ``in_flight`` the claims (one left by a request that never finished is released when
    evicted).
    """

    def __init__(self, lookup: Lookup | None = None, *, capacity: int = 16384, in_flight: int = 4096,
                 forget_after: float = 60.0, retry_after: float = 5.0, lookup_timeout: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lookup = lookup
        self.capacity = capacity
        self.in_flight = in_flight
        self.forget_after = forget_after
        self.retry_after = retry_after
        self.lookup_timeout = lookup_timeout
        self.clock = clock
        # head hash -> the conversation it is (or was) the head of; a float: no stored
        # conversation had it as its head when the database was asked, trusted until then.
        self._heads: OrderedDict[str, str | float] = OrderedDict()
        # conversation -> its head as of the last answer committed here, or the claim on it
        self._tips: OrderedDict[str, str | _Claim] = OrderedDict()
        self._claims: OrderedDict[str, _Claim] = OrderedDict()  # exchange id -> its claim
        self._down_until = 0.0  # the last lookup failed: none before then
        self.lookups = 0  # database lookups made (a miss here)
        self.lookup_failures = 0

    # ------------------------------------------------------------------ naming

    async def name(self, exchange: Exchange) -> str | None:
        """The conversation ``exchange`` belongs to (a new one named now, or the one it
        continues), or ``None`` when that cannot be known before the answer."""
        request = exchange.request
        if request is None:
            return None
        messages = request.messages
        if not any(m.role == "assistant" for m in messages):
            return new_conversation_id()  # nothing to continue
        hashes = message_hashes(messages)
        candidates = [hashes[k] for k in range(len(messages)) if messages[k].role == "assistant"]
        decided = self._decide(exchange.id, hashes[-1], candidates, may_ask=True)
        if isinstance(decided, list):
            found = await self._ask(decided)
            if found is None:
                return None
            self._learn(decided, found)
            # Decided again with what the store said (other requests may have moved things meanwhile).
            decided = self._decide(exchange.id, hashes[-1], candidates, may_ask=False)
            assert not isinstance(decided, list)
        return decided

    def _decide(self, exchange_id: str, asked: str, candidates: list[str], *,
                may_ask: bool) -> str | list[str] | None:
        """The conversation to name; or, when some candidate is unknown here and ``may_ask``,
        those candidates (to look up); ``None`` when they cannot be looked up now."""
        heads, tips = self._heads, self._tips
        now = self.clock()
        can_ask = may_ask and self.lookup is not None and now >= self._down_until
        unknown: list[str] = []
        for head in reversed(candidates):  # the longest prefix first, as the ingester matches
            entry = heads.get(head)
            if isinstance(entry, str):
                tip = tips.get(entry)
                if tip == head:
                    if unknown and can_ask:
                        break  # a longer prefix might be another conversation's head: ask first
                    heads.move_to_end(head)
                    self._claim(_Claim(exchange_id, entry, head, asked))
                    return entry
                if tip is not None:
                    # Its conversation moved on from here, or a request in flight is continuing
                    # it: this request branches off; a shorter prefix may be another's head.
                    continue
            elif isinstance(entry, float) and entry > now:
                continue  # no stored conversation ends here (as of a moment ago)
            unknown.append(head)
        if not unknown:
            return new_conversation_id()  # continues nothing known: a new conversation
        return unknown if can_ask else None

    def _learn(self, looked_up: list[str], found: dict[str, str]) -> None:
        """Take in what the store said of ``looked_up``; what this process learned meanwhile
        (a commit while the lookup ran) is newer, and wins."""
        heads, tips = self._heads, self._tips
        until = self.clock() + self.forget_after
        for head in looked_up:
            entry = heads.get(head)
            if isinstance(entry, str) and entry in tips:
                continue
            conversation = found.get(head)
            if conversation is None:
                self._remember(head, until)
                continue
            self._remember(head, conversation)
            if conversation not in tips:
                self._tip(conversation, head)

    async def _ask(self, hashes: list[str]) -> dict[str, str] | None:
        lookup = self.lookup
        assert lookup is not None
        self.lookups += 1
        try:
            return await asyncio.wait_for(asyncio.to_thread(lookup, hashes), self.lookup_timeout)
        except Exception as error:  # the store is away: say nothing rather than guess
            self.lookup_failures += 1
            self._down_until = self.clock() + self.retry_after
            log.warning("cannot look up a conversation in the store (%s); the ingester threads it instead",
                        str(error).splitlines()[0] if str(error) else type(error).__name__)
            return None

    # ------------------------------------------------------------------ committing

    def committed(self, exchange: Exchange, conversation_id: str | None) -> None:
        """``exchange`` was journaled as part of ``conversation_id``: its answer, if it has one,
        is that conversation's head now."""
        claim = self._claims.pop(exchange.id, None)
        response = exchange.response
        answered = response is not None and bool(response.content)
        if claim is not None and (not answered or claim.conversation != conversation_id):
            self._release(claim)  # nothing stored there: it can be continued from that point again
            claim = None
        if response is None or not answered or conversation_id is None:
            return
        if claim is not None:
            asked = claim.asked
        else:
            request = exchange.request
            hashes = message_hashes(request.messages) if request is not None else []
            asked = hashes[-1] if hashes else ""
        head = answer_hash(asked, response.content)
        self._remember(head, conversation_id)
        self._tip(conversation_id, head)

    # ------------------------------------------------------------------ the bounded maps

    def _remember(self, head: str, value: str | float) -> None:
        heads = self._heads
        heads[head] = value
        heads.move_to_end(head)
        while len(heads) > self.capacity:
            heads.popitem(last=False)

    def _tip(self, conversation: str, tip: str | _Claim) -> None:
        tips = self._tips
        tips[conversation] = tip
        tips.move_to_end(conversation)
        while len(tips) > self.capacity:
            tips.popitem(last=False)

    def _claim(self, claim: _Claim) -> None:
        self._tip(claim.conversation, claim)
        claims = self._claims
        claims[claim.exchange_id] = claim
        while len(claims) > self.in_flight:
            self._release(claims.popitem(last=False)[1])  # never finished: let the conversation go on

    def _release(self, claim: _Claim) -> None:
        if self._tips.get(claim.conversation) is claim:
            self._tips[claim.conversation] = claim.head
