"""Questions the handbook is *not* about, as a reference point for the off-topic signal.

A question about the weather or a plumber's rates can still land close to a handbook section in
embedding space ("rate", "pay"); what tells it apart is that it is closer still to everyday questions
about the world outside the community. The hybrid confidence uses how far the best section's
similarity is ahead of the closest of these (:class:`~domain.policy.index.HybridSignals`). Besides
everyday talk they include "near-topic" kinds: one person's own records or one project's data (the
handbook states rules, not "has my payment arrived"), terms of work it does not offer (insurance,
leave, pensions) and general advice in fields that share its words (tax rates, contract law). Each
stands for a kind of question, not a copy of an evaluation question; add one only for a kind of
question, never to fix a single one.
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
    # about one person's own records or one project's data: the handbook states rules, not these
    "has my payment for last week arrived yet",
    "how much money have I made so far this month",
    "what's the status of my application",
    "when is the due date of the project I'm working on",
    "who is my manager",
    "how many jobs are available right now",
    "what grade did I get on my last assignment",
    # terms of work that the handbook does not offer
    "do we get health, dental or vision insurance",
    "how many vacation days and sick days do we get",
    "is there a retirement plan or a pension",
    "is there a year-end bonus or a raise",
    "how do I get promoted",
    "is there parental leave",
    "do you offer training courses or a certificate",
    "is there an office I can work from",
    "where is the company based and how many people work there",
    # general advice in fields that share the handbook's words (tax, law, medicine, software)
    "what is the income tax rate in my country",
    "should I set up a company for my side business",
    "is this contract clause legally enforceable",
    "what is the right dose of this medication",
    "how many hours of sleep does a person need",
    "which AI chatbot is the best one to use",
    "how do I change a setting in this app",
    "how do I complain about a bill or a fine",
)
