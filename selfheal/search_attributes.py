"""The custom search attributes selfheal sets, so the Temporal UI can filter on them."""

from temporalio.common import SearchAttributeKey

KIND = SearchAttributeKey.for_keyword("SelfhealKind")
AGENT = SearchAttributeKey.for_keyword("SelfhealAgent")
STATE = SearchAttributeKey.for_keyword("SelfhealState")
ATTEMPT = SearchAttributeKey.for_int("SelfhealAttempt")
ERROR_KIND = SearchAttributeKey.for_keyword("SelfhealErrorKind")

ALL: tuple[SearchAttributeKey, ...] = (KIND, AGENT, STATE, ATTEMPT, ERROR_KIND)
