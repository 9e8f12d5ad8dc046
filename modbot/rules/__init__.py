"""The rule language and engine.

A *ruleset* is every ``*.yaml``/``*.yml`` file of the rules directory. A file has
``version: 1``, named term ``lists``, ``defaults`` for its rules, and ``rules``. A *rule*
says which events it is ``on`` (comment, emote, gift, join, like, follow, share,
question, or any), a ``when`` condition (a mapping whose keys must all hold, with
``any``/``all``/``not`` nesting; text, user, gift and room checks; at most one
``rate`` or ``repeat`` window that counts only events passing the rest), and what to
do: ``then`` actions (mute, ban, reply, comments off/on, log) and/or an ``escalate``
ladder whose Nth strike within its window takes the Nth step. ``mode: observe``
decides and audits but never acts; ``cooldown`` stops a second action by the rule on
the same user (or room, for room-wide rules) within it; ``exempt`` roles are never
acted on; ``priority`` orders rules (higher first).

When several rules fire on one event each is reported, but the user gets one
enforcement: the most severe (ban > longer mute > shorter mute), and a reply is sent
once. Modules: ``loader`` (YAML with positions), ``schema`` (the vocabulary),
``diagnostics`` (``FILE:LINE:COL: error:``), ``compile`` (rules to predicates and one
matcher per normalisation level), ``text`` (normalisation, matching, links),
``conditions``, ``state`` (windows, strikes, cooldowns) and ``engine``.
"""
