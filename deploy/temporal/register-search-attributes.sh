#!/bin/sh
# Register the Selfheal search attributes (selfheal/search_attributes.py) on the namespace, once.
# Idempotent: an attribute that already exists is left as it is.
set -eu
until temporal operator cluster health | grep -q SERVING; do sleep 2; done
existing=$(temporal operator search-attribute list)
for attr in SelfhealKind:Keyword SelfhealAgent:Keyword SelfhealState:Keyword SelfhealErrorKind:Keyword SelfhealAttempt:Int; do
  name=${attr%%:*}
  type=${attr##*:}
  if echo "$existing" | grep -qw "$name"; then
    echo "$name already registered"
  else
    temporal operator search-attribute create --name "$name" --type "$type"
  fi
done
