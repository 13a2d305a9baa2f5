"""Questions the handbook is *not* about, as a reference point for the off-topic signal.

A question about the weather or a plumber's rates can still land close to a handbook section in
embedding space ("rate", "pay"); what tells it apart is that it is closer still to everyday questions
about the world outside the community. The hybrid confidence uses how far the best section's
similarity is ahead of the closest of these (:class:`~domain.policy.index.HybridSignals`). They are
general topics, written from no evaluation question; add one only for a kind of question, never to
fix a single one.
"""

from __future__ import annotations

BACKGROUND_QUESTIONS: tuple[str, ...] = (
    "what's the weather going to be like tomorrow",
    "who won the game last night",
    "any good recipes for dinner tonight",
    "can you recommend a good restaurant near me",
    "what's the best laptop to buy right now",
    "how much does it cost to get my roof repaired",
    "what is the average salary for a nurse or a lawyer",
    "how much is a streaming subscription per month",
    "how do I reset my phone",
    "my wifi keeps dropping, how do I fix it",
    "what time is it in Tokyo",
    "how do I renew my passport",
    "cheap flights to Europe this summer",
    "what should I watch on Netflix",
    "tell me a joke",
    "how are you doing today",
    "what's everyone doing this weekend",
    "any plans for the holidays",
    "is the stock market going up",
    "how do I invest in crypto",
    "what's a good workout routine",
    "how do I get my kid to sleep",
    "what should I pack for my kid's school trip",
    "can you help me write a cover letter for another job",
    "how do I apply for a job at Google",
    "what's the capital of Australia",
    "translate this sentence into Spanish",
    "how do I write a Python script",
    "what's the best note taking app",
    "which other companies pay more for freelance work",
    "how do I get a mortgage",
    "what medicine helps with a headache",
    "recommend me a good book",
    "how do I get a visa to work abroad",
    "when is the next election",
    "what's the meaning of life",
)
