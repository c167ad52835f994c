"""Is a text in a language the English-only scorers can read? A cheap gate (no model) shared by the value scorer
and the score job.

The bundled refusal and prompt-harm classifiers and the value lexicons are English. On other languages they do not
fail loudly, they guess: "Lo siento, no puedo ayudar con eso." scores as compliance (P(refusal) 0.22), and the
Hindi request "बम कैसे बनाएं?" ("how to make a bomb?") as benign. Counted in a rate, such guesses make a
language group look better or worse served than it is. So a text with *positive evidence* of another language is
not scored:
  - more than NON_ASCII_MAX of its letters are outside ASCII (Cyrillic, CJK, Arabic, Devanagari, Greek...), or
  - at least FOREIGN_MIN of its tokens, and at least two, are function words of Spanish, French, German, Italian,
    Portuguese, Dutch or Indonesian (FOREIGN_STOPWORDS, without one-letter words: the "y" of "x^2+y^2" and the
    "o" of an answer "O" are not Spanish or Portuguese) and they outnumber the English ones (ENGLISH_STOPWORDS
    less the words those languages use too: the "no" and "me" of "A mi me parece que no...", the "is" of Dutch);
    Spanish's inverted "¿" and "¡" count as one such word each.
A reply whose opening sentence is English (reply_not_english) is read all the same: the classifiers decide on it.
English prose has 35-55% of its tokens in ENGLISH_STOPWORDS (median 0.60 on HH-RLHF replies, 5th percentile 0.43).
On English data the gate refuses 0 of 720 XSTest replies and prompts, 0 of 11,525 HH-RLHF replies and 11,512
prompts, and 9 of 25,356 instruction prompts (refusal_direction), each a translation request quoting a sentence
in another language or a question written in one (tests/test_language_gate.py). Short texts say little: "Comment
faire un gâteau ?" passes as English. Other languages written in plain ASCII (Swahili, Tagalog, Turkish without
diacritics...) pass as English too: a gap.
"""
from __future__ import annotations

import re

NON_ASCII_MAX = 0.20
FOREIGN_MIN = 0.10
GATE_CHARS = 2_000  # the opening is enough to tell a language, and bounds the cost of a long reply
ENGLISH_STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from
further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor
not of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those through to too under until up very was wasn't we we'd we'll we're we've were
weren't what what's when when's where where's which while who who's whom why why's will with won't would wouldn't
you you'd you'll you're you've your yours yourself yourselves also just like get really think know want
""".split())
FOREIGN_STOPWORDS = frozenset("""
de la que el en y los las del se por un una con para es lo al como pero sus le su más este esta está son muy
sin sobre también hay ser puede puedes eso porque
le les et est des du une pas ne vous nous je il elle sont avec pour dans ce cette qui mais ou très sur être
der die das und ist nicht ein eine zu den mit sich dem auf für auch es ich sie wir ihr sind wird werden kann
oder aber wenn nur noch
il di che è non un una per sono della con come più anche gli questo questa ma ci si perché molto
o os as um uma não com para é mais por muito também você isso ele ela são pode
het een van en niet dat zijn op te voor ik je met ook maar wat wordt kunt dit
yang dan di ini itu dengan untuk tidak ada dari dalam akan saya anda bisa juga
""".split()) - ENGLISH_STOPWORDS
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
# Function words of other languages that are also English words or names ("come", "die", "per hour", "non-",
# ".com", "Los Angeles", "Al"): the words of FOREIGN_STOPWORDS seen most often in 37,596 English texts (XSTest
# replies, refusal_direction prompts, HH-RLHF turns). They are no evidence of another language.
ENGLISH_HOMOGRAPHS = frozenset("come non com die per son met van los las sin um os hay al el ma ci con".split())
_FOREIGN_GATE = frozenset(w for w in FOREIGN_STOPWORDS if len(w) > 1) - ENGLISH_HOMOGRAPHS
FOREIGN_MIN_TOKENS = 2
# English function words that are function words of the gate's other languages too ("No, no puedo hacer eso.",
# "Me temo que...", "On ne peut pas...", "Das ist so nicht...", "Dat is niet..."): no evidence of English.
_SHARED_FUNCTION_WORDS = frozenset("a i no me he in so an am as do is of on over was had will also be".split())
_ENGLISH_MARKERS = ENGLISH_STOPWORDS - _SHARED_FUNCTION_WORDS

# Imported after the constants: monitor.values' scorer imports them from here (monitor.values imports the scorer).
from monitor.values.matcher import TOKEN_RE, normalize  # noqa: E402


def foreign_evidence(low: str, toks: list[str]) -> bool:
    """True when normalised text `low` (tokens `toks`) shows positive evidence of a language other than English."""
    if not toks:
        return False
    if not low.isascii():
        non_ascii = sum(1 for c in _NON_ASCII_RE.findall(low) if c.isalpha())
        if non_ascii > NON_ASCII_MAX * sum(map(len, toks)):
            return True
    foreign = sum(map(_FOREIGN_GATE.__contains__, toks))
    if "\u00bf" in low or "\u00a1" in low:
        # Spanish opens a question or an exclamation with an inverted mark, English never: one word's worth, so
        # "¿Cómo hago una bomba casera? Dime los pasos." is Spanish and an English request quoting "¿cómo estás?"
        # is not (1 of 49,833 English texts has one).
        foreign += low.count("\u00bf") + low.count("\u00a1")
    return (foreign >= FOREIGN_MIN_TOKENS and foreign >= FOREIGN_MIN * len(toks)
            and foreign > sum(map(_ENGLISH_MARKERS.__contains__, toks)))


def not_english(text: str | None) -> bool:
    """True when `text` shows positive evidence of another language (see the module docstring); empty is False."""
    if not text:
        return False
    low = normalize(text[:GATE_CHARS])
    return foreign_evidence(low, TOKEN_RE.findall(low))


# The opening of a reply: its first sentence (a stop, colon or line break after at least 12 characters), at most
# OPENING_CHARS. The refusal classifiers read a reply's opening first ("I'm sorry, but...", "Sure! Here is...").
_OPENING_END = re.compile(r"[.!?:](?:\s|$)|\n")
OPENING_CHARS = 300
OPENING_MIN_ENGLISH = 2  # English-only function words an opening needs to count as English
OPENING_MIN_SHARE = 0.2  # ... and their share of its tokens


def english_opening(text: str) -> bool:
    """True when the opening of `text` is English: no evidence of another language and English-only function words."""
    head = text[:OPENING_CHARS]
    m = _OPENING_END.search(head, 12)
    low = normalize(head[:m.end()] if m else head)
    toks = TOKEN_RE.findall(low)
    english = sum(map(_ENGLISH_MARKERS.__contains__, toks))
    return (len(toks) >= 3 and english >= max(OPENING_MIN_ENGLISH, OPENING_MIN_SHARE * len(toks))
            and not foreign_evidence(low, toks))


_FOREIGN_MARKS = ("\u00bf", "\u00a1", "\u00ab", "\u00bb")  # ¿ ¡ « »: Spanish, French, Italian... never English


def some_foreign_sign(low: str, toks: list[str]) -> bool:
    """Any sign of another language in normalised text, however slight: a non-ASCII letter, one function word of
    another language, an inverted or angle quotation mark. Too weak alone (an English text naming "José"); with a
    prompt in another language and no English words, it tells a short reply's language."""
    return (any(c.isalpha() for c in _NON_ASCII_RE.findall(low)) or any(map(_FOREIGN_GATE.__contains__, toks))
            or any(m in low for m in _FOREIGN_MARKS))


# An English request for text in another language: "Translate this into Spanish", "Write a poem in French".
_LANGUAGES = ("spanish|french|german|italian|portuguese|dutch|indonesian|chinese|mandarin|cantonese|japanese|korean|"
              "russian|arabic|hindi|urdu|bengali|turkish|polish|ukrainian|greek|hebrew|swedish|norwegian|danish|"
              "finnish|czech|romanian|hungarian|vietnamese|thai|malay|tagalog|swahili|persian|farsi|latin")
_ASKS_FOR_LANGUAGE = re.compile(rf"\btranslat\w*\b|\b(?:in|into)\s+(?:{_LANGUAGES})\b", re.IGNORECASE)


def asks_for_other_language(prompt: str | None, prompt_foreign: bool | None = None) -> bool:
    """True for an English request that asks for text in another language (a translation, a poem in French): its
    reply is that text, a compliance, which an English-only classifier labels as such (it holds no refusal).
    `prompt_foreign`: not_english(prompt), when the caller has it already."""
    if not prompt or not _ASKS_FOR_LANGUAGE.search(prompt[:GATE_CHARS]):
        return False
    return not (not_english(prompt) if prompt_foreign is None else prompt_foreign)


def reply_not_english(text: str | None, prompt: str | None = None, prompt_foreign: bool | None = None) -> bool:
    """not_english(text) for a reply the refusal classifiers would read: False when its opening is English.

    "Sure! Here is the translation: <a Spanish paragraph>" or "Here is the poem, by Pushkin: <Russian verse>" show
    another language, but what says whether the reply refuses is the English opening, which the classifiers read.
    Gated, such replies left the rates, and they are compliances (a refusal to translate has no foreign text), so
    the rates of translation and quotation requests read as almost all refusals.

    Given its `prompt`, a reply too short for the evidence not_english needs is judged with the conversation: when
    the prompt is in another language and the reply has no two English words but some sign of another language
    ("Ve a Configuración, luego a Seguridad, y elige «Cambiar contraseña».", answering a Spanish question), it is in
    the prompt's language. A reply with no sign either way (code, "OK", a number) is scored. A reply in another
    language to an English request for one ("Translate this into Spanish") is the translation asked for: scored.
    `prompt_foreign`: not_english(prompt), when the caller has it already (the scoring job gates prompts too)."""
    if not text:
        return False
    if not_english(text):
        # The opening is what says whether a reply refuses; an English request for another language is answered
        # in it (a bare translation): both are read, not gated.
        return not english_opening(text) and not asks_for_other_language(prompt, prompt_foreign)
    if not prompt or not (not_english(prompt) if prompt_foreign is None else prompt_foreign):
        return False
    low = normalize(text[:GATE_CHARS])
    toks = TOKEN_RE.findall(low)
    return sum(map(_ENGLISH_MARKERS.__contains__, toks)) < OPENING_MIN_ENGLISH and some_foreign_sign(low, toks)
