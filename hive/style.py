"""How much generated replies read like mine, measured three ways on replies to the same held-out contexts:

- style metrics: length, case, punctuation, emoji, questions, vocabulary, line breaks (means and shares);
- stop rate: the share of replies that end by themselves (the end-of-turn token) before generation.max_new_tokens;
  a reply cut off at the limit is unfinished, whatever its text;
- indistinguishability: a small classifier learns to tell my real replies from a model's replies to the same
  contexts; its cross-validated ROC AUC is 0.5 when it cannot tell them apart and 1.0 when it always can.
"""

import re
import string

from hive import bubbles

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# The pictographic blocks plus dingbats/symbols and regional-indicator flags: what phones insert as emoji.
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u3297\u3299]")
PUNCTUATION = set(string.punctuation) | set("…“”‘’¡¿")

STYLE_METRICS = {  # key -> (label, how to read it)
    "words_per_reply": ("words per reply", "mean"),
    "chars_per_reply": ("characters per reply", "mean"),
    "lowercase_start": ("starts lowercase", "share of replies whose first letter is lowercase"),
    "punctuation_per_word": ("punctuation per word", "punctuation marks / words"),
    "emoji_share": ("has emoji", "share of replies with at least one emoji"),
    "question_share": ("asks a question", "share of replies containing '?'"),
    "vocab_overlap": ("my words", "share of words that also occur in my real replies to these contexts (1 for me)"),
    "multiline_share": ("several messages", "share of replies that are a burst of messages (hive.bubbles: lines)"),
}
# Shares are compared in absolute terms (0.40 against 0.45), means and ratios relative to my value.
SHARES = frozenset(k for k in STYLE_METRICS if k.endswith("_share") or k in ("lowercase_start", "vocab_overlap"))

CLASSIFIER = ("logistic regression on character 1-4-grams (TF-IDF), 5-fold cross-validated; both replies to a "
              "context stay in the same fold")

EXPLANATION = (
    "*ends by itself*: share of generated replies that end with the end-of-turn token before "
    "generation.max_new_tokens (a real message always ends). *told apart from me*: a " + CLASSIFIER + " tries to "
    "tell my real replies from the model's replies to the same contexts; its ROC AUC is 0.50 when it cannot tell "
    "them apart (the aim) and 1.00 when it always can."
)


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def style_metrics(replies: list[str], vocabulary: set[str]) -> dict[str, float]:
    """The STYLE_METRICS of a list of replies; `vocabulary` is the set of (lowercased) words to overlap with."""
    n = max(len(replies), 1)
    tokens = [words(r) for r in replies]
    all_words = [w for t in tokens for w in t]
    first_letters = [next((c for c in r if c.isalpha()), "") for r in replies]
    lettered = [c for c in first_letters if c]
    return {
        "words_per_reply": len(all_words) / n,
        "chars_per_reply": sum(len(r) for r in replies) / n,
        "lowercase_start": sum(c.islower() for c in lettered) / max(len(lettered), 1),
        "punctuation_per_word": sum(ch in PUNCTUATION for r in replies for ch in r) / max(len(all_words), 1),
        "emoji_share": sum(bool(EMOJI.search(r)) for r in replies) / n,
        "question_share": sum("?" in r for r in replies) / n,
        "vocab_overlap": sum(w in vocabulary for w in all_words) / max(len(all_words), 1),
        "multiline_share": sum(len(bubbles.split(r)) > 1 for r in replies) / n,
    }


def gap(key: str, value: float, real: float) -> float:
    """How far a metric is from my real value: absolute for shares, relative (0.15 = 15 %) for the others."""
    if key in SHARES:
        return abs(value - real)
    return abs(value - real) / real if real else float(value != 0)


def stop_rate(ended: list[bool]) -> float:
    """Share of generated replies that ended by themselves rather than at generation.max_new_tokens."""
    return sum(ended) / max(len(ended), 1)


def indistinguishability(real: list[str], generated: list[str], folds: int = 5, seed: int = 0) -> float | None:
    """Cross-validated ROC AUC of a classifier (CLASSIFIER) that tells `generated[i]` from `real[i]`, the replies to
    context i; None when there are fewer contexts than folds. Character n-grams see what the style metrics see
    (length, case, punctuation, emoji, line breaks) and also the words and spellings themselves. Each fold's
    classifier is fitted on the other folds' replies only; the AUC is taken over all held-out predictions."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline

    if len(real) != len(generated):
        raise ValueError(f"{len(real)} real replies but {len(generated)} generated ones")
    n = len(real)
    if n < folds:
        return None
    texts = np.array(real + generated, dtype=object)
    labels = np.array([0] * n + [1] * n)
    fold_of_context = np.random.default_rng(seed).permutation(n) % folds
    fold = np.concatenate([fold_of_context, fold_of_context])
    scores = np.zeros(2 * n)
    for k in range(folds):
        train, test = fold != k, fold == k
        # analyzer="char" keeps spaces and line breaks inside the n-grams; case is style, so it is kept too
        model = make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False, sublinear_tf=True),
            LogisticRegression(max_iter=2000),
        )
        model.fit(list(texts[train]), labels[train])
        scores[test] = model.predict_proba(list(texts[test]))[:, 1]
    return float(roc_auc_score(labels, scores))
