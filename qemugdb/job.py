"""Jobs: the `jobs` list of job.c (link job_list), block jobs among them (blockjob.c).

Type and status are spelled as QMP spells them (JobType_lookup, JobStatus_lookup); progress
is Job.progress (ProgressMeter current/total, QMP's offset/len); speed is BlockJob.speed.
"""

from dataclasses import dataclass

from . import enums
from .obj import container_of
from .queue import qlist_foreach
from .target import TargetError

# blockjob.c is_block_job(): the job types whose Job is embedded in a BlockJob.
BLOCK_JOB_TYPES = ("JOB_TYPE_BACKUP", "JOB_TYPE_COMMIT", "JOB_TYPE_MIRROR", "JOB_TYPE_STREAM")


def all_jobs(target):
    """Every Job (job.c `jobs`, link job_list)."""
    return qlist_foreach(target.variable("jobs", file="job.c"), "job_list")


def is_block_job(job):
    return job.driver.deref_().job_type.enum_name_() in BLOCK_JOB_TYPES


def block_jobs(target):
    """The BlockJob Objects, in job list order (blockjob.c block_job_next_locked)."""
    block_job = target.lookup_type("BlockJob")
    for job in all_jobs(target):
        if is_block_job(job):
            yield container_of(job, block_job, "job")


@dataclass
class JobRecord:
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
    error: str | None = None


@dataclass
class JobList:
    jobs: list
    error: str | None = None        # the list itself broke here


def jobs(target):
    """JobList of every job; a bad job or link is reported, not raised."""
    types = enums.qapi_names(target, "enum JobType", "JobType_lookup")
    statuses = enums.qapi_names(target, "enum JobStatus", "JobStatus_lookup")
    out = JobList([])
    try:
        block_job = target.lookup_type("BlockJob")
        for job in all_jobs(target):
            rec = JobRecord(address=job.address_)
            out.jobs.append(rec)
            try:
                rec.id = job.id.string_() if job.id.value_() else None
                jtype = job.driver.deref_().job_type
                rec.type = types.get(jtype.value_(), enums.enum_name(jtype))
                rec.status = statuses.get(job.status.value_(), enums.enum_name(job.status))
                rec.current = job.progress.current.value_()
                rec.total = job.progress.total.value_()
                rec.busy = bool(job.busy.value_())
                rec.paused = job.pause_count.value_() > 0
                rec.aio_context = job.aio_context.value_()
                rec.co = job.co.value_() or None
                rec.block_job = jtype.enum_name_() in BLOCK_JOB_TYPES
                if rec.block_job:
                    rec.speed = container_of(job, block_job, "job").speed.value_()
            except TargetError as e:
                rec.error = str(e)
    except TargetError as e:
        out.error = str(e)
    return out
