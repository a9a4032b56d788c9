"""Training questions from a tenant's documents alone (``ragtune synth``).

Answer first: candidates are picked in each chunk (:mod:`~ragtune.synth.candidates`), a teacher
writes a question for each (:mod:`~ragtune.synth.teacher`: the ``local`` base model, an
OpenAI-compatible ``openai`` endpoint, or the ``cloze`` rule of :mod:`~ragtune.synth.cloze`), the filters keep the questions that hold up
(:mod:`~ragtune.synth.filters`), and entity swaps make unanswerable ones
(:mod:`~ragtune.synth.unanswerable`). The output is the JSONL ``ragtune train`` and ``ragtune
eval`` read, written chunk by chunk so a run resumes (:mod:`~ragtune.synth.output`), with a
report of what was kept and why the rest was dropped (:mod:`~ragtune.synth.report`).
"""

from ragtune.synth.candidates import ANSWER_KINDS, Candidate, extract_candidates
from ragtune.synth.cloze import ClozeTeacher, cloze_question
from ragtune.synth.endpoint import EndpointTeacher, check_endpoint, is_local_url
from ragtune.synth.filters import NearDuplicates, answer_matches, gives_away_answer, round_trip
from ragtune.synth.local import LocalTeacher
from ragtune.synth.output import ChunkRecord, SynthFiles, SynthOutput
from ragtune.synth.pipeline import ChunkOutcome, SourceChunk, synthesize_chunk
from ragtune.synth.report import DROPPED_BY, STAGES, SynthReport, build_report
from ragtune.synth.run import SynthResult, synthesize
from ragtune.synth.settings import TEACHERS, EndpointSettings, SynthSettings
from ragtune.synth.teacher import QuestionRequest, Teacher, parse_question, question_messages
from ragtune.synth.unanswerable import Swap, entity_swap

__all__ = [
    "ANSWER_KINDS",
    "DROPPED_BY",
    "STAGES",
    "TEACHERS",
    "Candidate",
    "ChunkOutcome",
    "ChunkRecord",
    "ClozeTeacher",
    "EndpointSettings",
    "EndpointTeacher",
    "LocalTeacher",
    "NearDuplicates",
    "QuestionRequest",
    "SourceChunk",
    "Swap",
    "SynthFiles",
    "SynthOutput",
    "SynthReport",
    "SynthResult",
    "SynthSettings",
    "Teacher",
    "answer_matches",
    "build_report",
    "check_endpoint",
    "cloze_question",
    "entity_swap",
    "extract_candidates",
    "gives_away_answer",
    "is_local_url",
    "parse_question",
    "question_messages",
    "round_trip",
    "synthesize",
    "synthesize_chunk",
]
