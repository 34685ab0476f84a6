"""Jobs: the `jobs` list of job.c (link job_list), block jobs among them (blockjob.c).

Type and status are spelled as QMP spells them (JobType_lookup, JobStatus_lookup); progress
is Job.progress (ProgressMeter current/total, QMP's offset/len); speed is BlockJob.speed.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import enums
from ..obj import Object, container_of, read_fields
from .coroutine import Coroutines
from .roots import all_jobs
from ..result import Record
from ..target import Target, TargetError

# blockjob.c is_block_job(): the job types whose Job is embedded in a BlockJob.
BLOCK_JOB_TYPES = ("JOB_TYPE_BACKUP", "JOB_TYPE_COMMIT", "JOB_TYPE_MIRROR", "JOB_TYPE_STREAM")


def is_block_job(job: Object) -> bool:
    """Whether a Job is embedded in a BlockJob (blockjob.c is_block_job()).

    :param job: Job"""
    return job.driver.deref_().job_type.enum_name_() in BLOCK_JOB_TYPES


def block_jobs(target: Target) -> Iterator[Object]:
    """The BlockJob Objects, in job list order (blockjob.c block_job_next_locked).

    :returns: iterator of BlockJob"""
    block_job = target.lookup_type("BlockJob")
    for job in all_jobs(target):
        if is_block_job(job):
            yield container_of(job, block_job, "job")


@dataclass
class JobRecord(Record):
    ERRORS = ('error', 'co_error')
    NOTES = ('co_note',)
    address: int
    id: str | None = None
    type: str | None = None
    status: str | None = None
    current: int | None = None      # QMP offset
    total: int | None = None        # QMP len
    speed: int | None = None        # block jobs only
    busy: bool | None = None
    paused: bool | None = None      # pause_count > 0
    aio_context: int | None = None
    co: int | None = None
    block_job: bool = False
    suspended_in: object = None     # Location of the coroutine's first non-machinery frame
    frames: list = field(default_factory=list)
    co_error: str | None = None     # its coroutine could not be read
    co_note: str | None = None      # why it is not unwound: it runs on a thread
    error: str | None = None
    absent: list = field(default_factory=list)   # fields this QEMU version does not have


@dataclass
class JobList(Record):
    MISSING = ()
    jobs: list
    error: str | None = None        # the list itself broke here


def jobs(target: Target) -> JobList:
    """JobList of every job; a bad job or link is reported, not raised."""
    target.variable_address("jobs", file="job.c")  # MissingDebugInfo: no job layer at all
    types = enums.qapi_names(target, "enum JobType", "JobType_lookup")
    statuses = enums.qapi_names(target, "enum JobStatus", "JobStatus_lookup")
    out = JobList([])
    try:
        for job in all_jobs(target):
            rec = JobRecord(address=job.address_)
            out.jobs.append(rec)
            read_fields(
                rec, job, id=lambda: job.id.string_() if job.id.value_() else None,
                type=lambda: _spelled(types, job.driver.deref_().job_type),
                status=lambda: _spelled(statuses, job.status),
                current="progress.current", total="progress.total",
                busy=lambda: bool(job.busy.value_()),
                paused=lambda: job.pause_count.value_() > 0, aio_context="aio_context",
                co=lambda: job.co.value_() or None, block_job=lambda: is_block_job(job),
                speed=lambda: (container_of(job, "BlockJob", "job").speed.value_()
                               if is_block_job(job) else None))
    except TargetError as e:
        out.error = str(e)
    return out


def _spelled(names, enum):
    """An enum Object as QMP spells it (`names` from enums.qapi_names), else its name."""
    return names.get(enum.value_(), enums.enum_name(enum))


def add_coroutines(target: Target, result: JobList, frames: bool = False) -> None:
    """Fill each job's `suspended_in` (and `frames` when asked) from its coroutine."""
    reader = Coroutines(target)
    try:
        reader.guard  # noqa: B018 -- read once: without it no coroutine can be described
    except TargetError as e:
        for rec in result.jobs:
            if rec.co:
                rec.co_error = str(e)
        return
    for rec in result.jobs:
        if not rec.co:
            continue
        if rec.busy:
            rec.co_note = "busy: the coroutine runs on a thread (see `qemu bt -a`)"
            continue
        co = reader.describe(rec.co)
        rec.suspended_in = co.suspended_in
        rec.co_error = co.error
        if frames:
            rec.frames = co.frames
