"""The queue loop: lease a job, keep the lease alive while it trains, report how it ended.

One runner trains one job at a time; scaling out means more runners on the same queue. A
job is trained only by the runner holding its lease (a conditional write on the job record),
so a message delivered twice, or to two runners, is trained once. While training, a
heartbeat thread extends both the lease and the message's visibility; when a runner dies the
two run out, the message comes back and the next runner takes the expired lease over and
resumes from the job's last checkpoint.

Attempts are counted by SQS (ApproximateReceiveCount). A failure on an attempt before the
last puts the job back in the queue; on the last attempt the job is FAILED and the message,
given back once more, is moved to the dead-letter queue by SQS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from gpu_runner.data import ImageCache
from gpu_runner.train import JobContext, JobRejected, Outcome, StopSignals, train_job
from stek.eventlog import EventLog
from stek.observability import logger
from stek.registry.records import ValidationMessage
from stek.registry.store import ModelRegistry
from stek.registry.validation import fail_queued_validation, run_queued_validation
from stek.services import Services
from stek.settings import Settings, get_settings
from stek.training.jobs import JobStore, LeaseLost, LeaseRefused
from stek.training.schema import TrainingJob, TrainingMessage

DEFAULT_MAX_RECEIVES = 3
RETRY_PAUSE_S = 5.0
DEAD_LETTER_SWEEP_S = 60.0  # how often a runner looks for jobs that died on their last try
DEAD_LETTER_RECHECK_S = 900  # a dead letter already looked at is hidden this long


@dataclass
class Delivery:
    """A training message as received, with what SQS knows about its past."""

    message: TrainingMessage | None
    receipt: str
    receives: int
    message_id: str
    validation: ValidationMessage | None = None


class Heartbeat(threading.Thread):
    """Extends the lease and the message's visibility until stopped; notices cancellation."""

    def __init__(self, runner: Runner, job: TrainingJob, receipt: str | None) -> None:
        super().__init__(name=f"heartbeat-{job.job_id}", daemon=True)
        self.runner, self.job, self.receipt = runner, job, receipt
        self.cancel = threading.Event()
        self.lease_lost = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.runner.heartbeat_s):
            self.beat()

    def beat(self) -> None:
        try:
            job = self.runner.store.heartbeat(
                self.job.tenant, self.job.job_id, self.runner.owner, self.runner.lease_s
            )
        except LeaseLost:
            logger.warning("lease lost", job_id=self.job.job_id, runner=self.runner.owner)
            self.lease_lost.set()
            return
        except Exception:  # a blip in DynamoDB must not end the job; the next beat retries
            logger.exception("heartbeat failed", job_id=self.job.job_id)
            return
        if job.cancel_requested:
            self.cancel.set()
        if self.receipt:
            self.runner.set_visibility(self.receipt, self.runner.visibility_s)

    def stop(self) -> None:
        self._stopped.set()


class Runner:
    """Takes training jobs from the queue one at a time and trains them."""

    def __init__(
        self,
        settings: Settings,
        s3: Any,
        sqs: Any,
        dynamodb: Any,
        events: EventLog,
        *,
        owner: str | None = None,
        cache_dir: Path | None = None,
        wait_s: int = 20,
        show_progress: bool = False,
        device: torch.device | None = None,
        retry_backoff_s: float = 30.0,
    ) -> None:
        self.settings, self.s3, self.sqs, self.dynamodb, self.events = (
            settings,
            s3,
            sqs,
            dynamodb,
            events,
        )
        self.store = JobStore(settings.catalog_table, dynamodb)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_s = settings.training_lease_s
        # Often enough that a cancel request is seen within seconds, whatever the lease.
        self.heartbeat_s = min(max(self.lease_s / 4, 0.2), 10.0)
        # The message stays hidden a little longer than the lease lasts, so a message that
        # comes back always finds the lease of a dead runner already expired.
        self.visibility_s = self.lease_s + max(1, self.lease_s // 10)
        default_cache = Path.home() / ".cache" / "stek" / "images"
        self.cache = ImageCache(s3, cache_dir or Path(settings.runner_cache_dir or default_cache))
        self.wait_s = wait_s
        self.retry_backoff_s = retry_backoff_s
        self.show_progress = show_progress
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.shutdown = threading.Event()
        self._max_receives: int | None = None
        self._training = False

    @classmethod
    def from_environment(cls, **options: Any) -> Runner:
        svc = Services.from_settings(get_settings())
        return cls(svc.settings, svc.s3, svc.sqs, svc.dynamodb, svc.events, **options)

    # ----------------------------------------------------------------------- the loop

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Poll and train until `stop` or `self.shutdown` is set (SIGTERM sets the latter)."""
        logger.info("runner started", runner=self.owner, device=self.device.type)
        next_sweep = 0.0
        while not self.shutdown.is_set() and not (stop and stop.is_set()):
            try:
                if time.monotonic() >= next_sweep:
                    self.sweep_dead_letters()
                    next_sweep = time.monotonic() + DEAD_LETTER_SWEEP_S
                self.run_once()
            except Exception:
                # The queue or a table is unreachable for a moment: the runner outlives it.
                # The message it held, if any, comes back when its visibility runs out.
                logger.exception("runner loop failed; polling again shortly")
                self.shutdown.wait(RETRY_PAUSE_S)
        logger.info("runner stopped", runner=self.owner)

    def run_once(self, wait_s: int | None = None) -> Outcome | str | None:
        """Receive at most one message and deal with it; returns what became of its job."""
        answer = self.sqs.receive_message(
            QueueUrl=self.settings.training_queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=self.wait_s if wait_s is None else wait_s,
            VisibilityTimeout=self.visibility_s,
            AttributeNames=["ApproximateReceiveCount"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return None
        self._training = True  # from here on SIGTERM means "checkpoint and hand back"
        try:
            return self.handle(_delivery(messages[0]))
        finally:
            self._training = False

    def sweep_dead_letters(self) -> int:
        """FAILED for jobs whose message SQS dead-lettered while no runner could say so.

        A runner killed on a job's last attempt records nothing; its message passes the max
        receive count and lands in the dead-letter queue. Once the dead runner's lease has
        run out, the job is failed here. The messages stay for operators to replay; they are
        only hidden for a while so that the next sweep does not read them at once.
        """
        url = self.settings.training_dead_letter_queue_url
        if not url:
            return 0
        answer = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=DEAD_LETTER_RECHECK_S,
            AttributeNames=["ApproximateReceiveCount"],
        )
        failed = 0
        for delivery in map(_delivery, answer.get("Messages", [])):
            if delivery.message is None:
                continue
            reason = (
                f"the job's message went to the dead-letter queue after {self.max_receives()} tries"
            )
            job = self.store.fail_abandoned(
                delivery.message.tenant, delivery.message.job_id, reason
            )
            if job is not None:
                self._record(job, "job.failed", reason=reason)
                logger.info("abandoned job failed", job_id=job.job_id)
                failed += 1
        return failed

    def handle(self, delivery: Delivery) -> Outcome | str:
        if delivery.validation is not None:
            return self._validate(delivery, delivery.validation)
        if delivery.message is None:
            logger.warning("training message dropped", message_id=delivery.message_id)
            self._delete(delivery.receipt)
            return "dropped"
        message = delivery.message
        leased = self.store.lease(message.tenant, message.job_id, self.owner, self.lease_s)
        if isinstance(leased, LeaseRefused):
            return self._refused(delivery, leased)
        return self._train(leased, delivery)

    def _validate(self, delivery: Delivery, message: ValidationMessage) -> str:
        """Run a validation the registry queued because its split was too large for it."""
        registry = ModelRegistry(self.settings.catalog_table, self.dynamodb)
        try:
            run_queued_validation(registry, message)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            if delivery.receives < self.max_receives():
                logger.exception("validation failed; it will be retried")
                self.set_visibility(delivery.receipt, int(self.retry_backoff_s * delivery.receives))
                return "retry"
            fail_queued_validation(registry, message, reason)
            self.set_visibility(delivery.receipt, 0)  # on to the dead-letter queue
            return "failed"
        self._delete(delivery.receipt)
        return "validated"

    def train_by_id(self, tenant: str, job_id: str) -> Outcome | str:
        """Train one job without a queue message (the message, if any, stays where it is)."""
        leased = self.store.lease(tenant, job_id, self.owner, self.lease_s)
        if isinstance(leased, LeaseRefused):
            return "finished" if leased.finished else "leased elsewhere"
        return self._train(leased, None)

    def request_shutdown(self, *_: Any) -> None:
        """What SIGTERM does: finish the current step, checkpoint, give the job back, stop."""
        logger.info("shutdown requested", runner=self.owner)
        self.shutdown.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, *_: Any) -> None:
        self.request_shutdown()
        if not self._training:
            # Idle in a long poll: leave now rather than after it. A message received in this
            # instant was not leased yet and simply becomes visible again.
            raise SystemExit(0)

    # ------------------------------------------------------------------- one job

    def _train(self, job: TrainingJob, delivery: Delivery | None) -> Outcome | str:
        logger.append_keys(job_id=job.job_id, tenant=job.tenant, correlation_id=job.correlation_id)
        try:
            return self._train_leased(job, delivery)
        finally:
            logger.remove_keys(["job_id", "tenant", "correlation_id"])

    def _train_leased(self, job: TrainingJob, delivery: Delivery | None) -> Outcome | str:
        self.events.record(
            "job.started",
            job.tenant,
            job.job_id,
            correlation_id=job.correlation_id,
            dedup=f"{job.job_id}:started:{job.attempts}",
            runner=self.owner,
            attempt=job.attempts,
            resumed_from_epoch=job.epochs_done,
            device=self.device.type,
        )
        heartbeat = Heartbeat(self, job, delivery.receipt if delivery else None)
        if job.cancel_requested:  # asked while a runner that has since died held it
            heartbeat.cancel.set()
        context = JobContext(
            settings=self.settings,
            s3=self.s3,
            dynamodb=self.dynamodb,
            store=self.store,
            events=self.events,
            job=job,
            owner=self.owner,
            cache=self.cache,
            stop=StopSignals(
                heartbeat.cancel.is_set, self.shutdown.is_set, heartbeat.lease_lost.is_set
            ),
            show_progress=self.show_progress,
            device=self.device,
        )
        heartbeat.start()
        try:
            result = train_job(context)
        except LeaseLost:
            logger.warning("job abandoned: lease lost", runner=self.owner)
            return Outcome.LEASE_LOST
        except JobRejected as error:
            self._fail(job, str(error), delivery)
            return "failed"
        except Exception as error:  # anything else may be transient: retry while attempts last
            logger.exception("training attempt failed")
            return self._attempt_failed(
                job, f"{type(error).__name__}: {error}", delivery, heartbeat
            )
        finally:
            heartbeat.stop()
        try:
            return self._finish(job, result.outcome, result, delivery)
        except LeaseLost:
            logger.warning("job abandoned: lease lost", runner=self.owner)
            return Outcome.LEASE_LOST

    def _finish(
        self, job: TrainingJob, outcome: Outcome, result: Any, delivery: Delivery | None
    ) -> Outcome:
        if outcome is Outcome.SUCCEEDED:
            done = self.store.succeed(
                job.tenant, job.job_id, self.owner, result.artifacts, result.metrics
            )
            self._record(
                done, "job.succeeded", model_uri=result.artifacts.model_uri, metrics=result.metrics
            )
            self._delete(delivery.receipt if delivery else None)
        elif outcome is Outcome.CANCELLED:
            done = self.store.mark_cancelled(job.tenant, job.job_id, self.owner)
            self._record(
                done, "job.cancelled", while_status="RUNNING", epochs_done=done.epochs_done
            )
            self._delete(delivery.receipt if delivery else None)
        elif outcome is Outcome.INTERRUPTED:
            self.store.release(job.tenant, job.job_id, self.owner)
            if delivery:
                self._hand_back(delivery)
            logger.info("job handed back", job_id=job.job_id, runner=self.owner)
        return outcome

    def _attempt_failed(
        self, job: TrainingJob, reason: str, delivery: Delivery | None, heartbeat: Heartbeat
    ) -> str:
        if heartbeat.lease_lost.is_set():
            return Outcome.LEASE_LOST.value
        retry_left = delivery is not None and delivery.receives < self.max_receives()
        if not retry_left:
            attempts = delivery.receives if delivery else 1
            self._fail(
                job,
                f"{reason} (attempt {attempts} of {self.max_receives()})",
                delivery,
            )
            return "failed"
        assert delivery is not None
        self.store.release(job.tenant, job.job_id, self.owner, last_error=reason)
        # A pause that grows with each attempt, so a short outage does not use them all up.
        self.set_visibility(delivery.receipt, int(self.retry_backoff_s * delivery.receives))
        logger.info("job put back for retry", attempt=delivery.receives, reason=reason)
        return "retry"

    def _fail(self, job: TrainingJob, reason: str, delivery: Delivery | None) -> None:
        try:
            failed = self.store.fail(job.tenant, job.job_id, self.owner, reason)
        except LeaseLost:
            return
        self._record(failed, "job.failed", reason=reason)
        logger.info("job failed", job_id=job.job_id, reason=reason)
        if delivery is None:
            return
        if delivery.receives >= self.max_receives():
            # Given back once more, the message passes maxReceiveCount and SQS moves it to
            # the dead-letter queue, where operators find and replay failed jobs.
            self.set_visibility(delivery.receipt, 0)
        else:
            self._delete(delivery.receipt)

    def _refused(self, delivery: Delivery, refused: LeaseRefused) -> str:
        if refused.finished:
            self._delete(delivery.receipt)
            return "already finished"
        # Another runner trains it. This copy comes back after that lease would have run
        # out: if the runner died by then, this copy resumes the job.
        self.set_visibility(delivery.receipt, int(refused.held_for_s) + 1)
        logger.info(
            "job leased by another runner", job_id=refused.job.job_id, owner=refused.job.lease_owner
        )
        return "leased elsewhere"

    # ------------------------------------------------------------------------ queue

    def max_receives(self) -> int:
        if self._max_receives is None:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.settings.training_queue_url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})
            policy = json.loads(attributes.get("RedrivePolicy", "{}"))
            self._max_receives = int(policy.get("maxReceiveCount", DEFAULT_MAX_RECEIVES))
        return self._max_receives

    def set_visibility(self, receipt: str, seconds: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.settings.training_queue_url,
                ReceiptHandle=receipt,
                VisibilityTimeout=seconds,
            )
        except self.sqs.exceptions.ClientError:
            # The receipt went stale (the message was received again elsewhere): nothing to do.
            logger.warning("message visibility not changed")

    def _hand_back(self, delivery: Delivery) -> None:
        """Queue the job afresh for the next runner, then drop the message this one held.

        A stop is not a failure: re-sending instead of making the message visible again
        keeps pre-empted runners from using up the job's receives and sending it to the
        dead-letter queue. Sent before deleting, so a crash in between leaves a duplicate,
        which the lease turns away, rather than nothing.
        """
        assert delivery.message is not None
        self.sqs.send_message(
            QueueUrl=self.settings.training_queue_url,
            MessageBody=delivery.message.model_dump_json(),
        )
        self._delete(delivery.receipt)

    def _delete(self, receipt: str | None) -> None:
        if receipt:
            self.sqs.delete_message(
                QueueUrl=self.settings.training_queue_url, ReceiptHandle=receipt
            )

    def _record(self, job: TrainingJob, type_: str, **details: Any) -> None:
        self.events.record(
            type_,
            job.tenant,
            job.job_id,
            correlation_id=job.correlation_id,
            dedup=f"{job.job_id}:{type_}",
            **details,
        )


def _delivery(message: dict[str, Any]) -> Delivery:
    receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    delivery = Delivery(None, message["ReceiptHandle"], receives, message.get("MessageId", ""))
    # The queue carries training jobs and the validations too large for the registry.
    with contextlib.suppress(ValidationError):
        delivery.validation = ValidationMessage.model_validate_json(message["Body"])
    if delivery.validation is None:
        with contextlib.suppress(ValidationError):
            delivery.message = TrainingMessage.model_validate_json(message["Body"])
    return delivery


def main() -> None:
    runner = Runner.from_environment(show_progress=sys.stderr.isatty())
    runner.install_signal_handlers()
    runner.run_forever()
