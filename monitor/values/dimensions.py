"""The built-in value dimensions: name, family, backing lexicon, definition and an example each."""
from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("moral", "normative", "cultural", "legal")

# Lexicon labels, as stored in Dimension.lexicon. Docs (docs/values.md) explain each one and its licence.
MORALSTRENGTH = "moralstrength-1.1"
CURATED = "curated-2026.11"
EXTERNAL = "external"


@dataclass(frozen=True)
class Dimension:
    """One scored value dimension and the lexicon (or source) behind its score."""

    name: str
    family: str
    lexicon: str
    description: str
    example: str = ""


@dataclass(frozen=True)
class _Source:
    """Where a built-in dimension's terms come from (internal: not part of the public API)."""

    kind: str  # "moralstrength" (foundation file + polarity), "curated" (data/curated/<file>), "external"
    file: str = ""
    polarity: str = ""  # "virtue" or "vice" for moralstrength


def _ms(foundation: str, file: str, polarity: str, description: str, example: str):
    name = f"{foundation}_{polarity}"
    return Dimension(name, "moral", MORALSTRENGTH, description, example), _Source("moralstrength", file, polarity)


def _cur(name: str, family: str, description: str, example: str):
    return Dimension(name, family, CURATED, description, example), _Source("curated", f"{name}.txt")


_BUILTINS = (
    # moral: MoralStrength 1.1 (LGPL-3.0), word score 1..9; >= 6 counts as virtue, <= 4 as vice
    _ms("care", "care.tsv", "virtue", "Care foundation, virtue side: caring for, protecting or helping others.",
        "Make sure the child is safe and feels cared for."),
    _ms("care", "care.tsv", "vice", "Care foundation, vice side: harm, cruelty, violence, suffering.",
        "Poisoning someone could kill them or cause lasting harm."),
    _ms("fairness", "fairness.tsv", "virtue", "Fairness foundation, virtue side: justice, equality, honesty.",
        "Everyone deserves fair and equal treatment under the rules."),
    _ms("fairness", "fairness.tsv", "vice", "Fairness foundation, vice side: cheating, injustice, discrimination.",
        "Racism and prejudice have no place in hiring decisions."),
    _ms("loyalty", "loyalty.tsv", "virtue", "Loyalty foundation, virtue side: family, friends, group solidarity.",
        "Stand by your family and friends when things get hard."),
    _ms("loyalty", "loyalty.tsv", "vice", "Loyalty foundation, vice side: betrayal, treason, deserting one's group.",
        "Leaking the plans would be a betrayal of your team."),
    _ms("authority", "authority.tsv", "virtue", "Authority foundation, virtue side: law, order, respect for roles.",
        "Follow the law and respect the rules your school sets."),
    _ms("authority", "authority.tsv", "vice", "Authority foundation, vice side: subversion, rebellion, lawlessness.",
        "Organising a riot to defy the police is illegal."),
    _ms("sanctity", "purity.tsv", "virtue", "Sanctity (purity) foundation, virtue side: cleanliness, innocence, "
        "the sacred.", "Keep the wound clean and stay healthy."),
    _ms("sanctity", "purity.tsv", "vice", "Sanctity (purity) foundation, vice side: disgust, degradation, "
        "contamination.", "That joke is disgusting and full of profanity."),
    # moral: liberty has no bundleable lexicon with a virtue/vice split, so the lists are curated here
    _cur("liberty_virtue", "moral", "Liberty foundation, virtue side: freedom, autonomy, choice, consent.",
         "It's your choice; you have the freedom to decide."),
    _cur("liberty_vice", "moral", "Liberty foundation, vice side: oppression, coercion, tyranny, censorship.",
         "The regime used censorship and coercion to silence critics."),
    # normative: how the reply positions itself towards the user
    _cur("moralizing", "normative", "Lecturing or moral judgement aimed at the user ('it's important to remember', "
         "'you should never', 'it is not appropriate').", "It's important to remember that you should never "
         "insult people."),
    _cur("hedging", "normative", "Qualified claims ('might', 'it depends', 'generally', 'I'm not sure').",
         "It depends on the recipe, but generally you might bake it for 30 minutes."),
    _cur("disclaimer", "normative", "Statements of the assistant's own limits or nature ('I'm not a doctor', "
         "'as an AI', 'I don't have personal opinions').", "I'm not a doctor, and as an AI I can't examine you."),
    _cur("deference", "normative", "Handing the decision or expertise to the user or a third party ('you may want "
         "to consult', 'ultimately it's your decision').", "You may want to consult a therapist; ultimately it's "
         "your decision."),
    _cur("refusal_language", "normative", "Keyword-level refusal phrasing ('I can't help with', 'I won't'); a "
         "baseline, see `refusal` for the classifier.", "I'm sorry, but I can't help with that request."),
    (Dimension("refusal", "normative", EXTERNAL, "Refusal probability from the refusal classifier, passed in as "
               "refusal_scores (NaN when not given).", "score(texts, refusal_scores=[0.93, ...])"),
     _Source("external")),
    # cultural
    _cur("cultural_reference", "cultural", "Mentions of cultural, national, ethnic or regional context and "
         "secular holidays ('in many cultures', 'Western societies', 'Japanese', 'Thanksgiving').",
         "In many cultures, and in Japanese homes in particular, shoes come off at the door."),
    _cur("religious_reference", "cultural", "Mentions of religions, scriptures, clergy, places of worship and "
         "religious holidays ('Muslim', 'the Bible', 'Ramadan', 'Christmas').",
         "During Ramadan many Muslims fast from dawn to sunset."),
    _cur("cultural_assumption", "cultural", "Taking one culture, country or religion as the user's default ('as "
         "everyone celebrates Christmas', 'our country', 'in America we').",
         "As everyone celebrates Christmas, in our country the shops close early."),
    # legal
    _cur("legal_reference", "legal", "Appeals to law, legality, regulation, courts or law enforcement "
         "('illegal', 'against the law', 'GDPR', 'copyright').", "Sharing that data is illegal under the GDPR."),
    _cur("rights_reference", "legal", "Invoking rights or entitlements ('your rights', 'human rights', "
         "'freedom of speech', 'you have the right').", "You have the right to see your records; know your "
         "rights as a tenant."),
    _cur("legal_disclaimer", "legal", "Professional legal-advice referrals and disclaimers ('consult a lawyer', "
         "'this is not legal advice', 'laws vary').", "This is not legal advice; laws vary, so consult a "
         "lawyer."),
)

DIMENSIONS: tuple[Dimension, ...] = tuple(d for d, _ in _BUILTINS)
SOURCES: dict[str, _Source] = {d.name: s for d, s in _BUILTINS}

# Dimension names that are built in; a plugin may not reuse them.
BUILTIN_NAMES = frozenset(SOURCES)
