//! Refusals on the wire: a gRPC status whose code fits the rule broken, whose message starts
//! with the stable reason, and which carries a `google.rpc.ErrorInfo` detail (domain
//! `caravan.v1`) so that clients in any language can match on the reason.

use caravan_common::{Refusal, RefusalCode};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo` domain of Caravan's refusals.
pub const ERROR_DOMAIN: &str = "caravan.v1";

/// The gRPC code for each refusal.
pub fn grpc_code(code: RefusalCode) -> Code {
    use RefusalCode::*;
    match code {
        NoClientIdentity => Code::Unauthenticated,
        UnknownParticipant
        | WrongRole
        | SenderMismatch
        | UnknownKey
        | KeyRevoked
        | KeyExpired
        | KeyNotYetValid
        | DocumentTypeNotAllowed
        | CorridorClosed
        | ParticipantSuspended
        | CertificateRevoked => Code::PermissionDenied,
        BadSignature
        | MalformedHeader
        | InvalidHeader
        | PayloadHashMismatch
        | PayloadLengthMismatch
        | MalformedRequest
        | InvalidAck
        | InvalidDocument
        | BadReceipt
        | WrongRecipient => Code::InvalidArgument,
        PayloadTooLarge => Code::ResourceExhausted,
        // Too far ahead of the hub's clock: the same header may pass once the clocks agree.
        CreatedAtFuture => Code::OutOfRange,
        CreatedAtExpired => Code::InvalidArgument,
        UnknownRecipient | TrustListRollback | ConformanceRequired | StageTooLow
        | CorridorsAboveStage | RoundClosed => Code::FailedPrecondition,
        InvalidConformanceReport | InvalidScorecardEntry => Code::InvalidArgument,
        DuplicateMessageId | AlreadyRegistered => Code::AlreadyExists,
        UnknownMessage | NotRegistered => Code::NotFound,
        InvalidTrustList | BadLogProof | LogInconsistent => Code::DataLoss,
    }
}

/// The gRPC status for a refusal.
pub fn to_status(refusal: &Refusal) -> Status {
    let details = ErrorDetails::with_error_info(refusal.code.as_str(), ERROR_DOMAIN, []);
    Status::with_error_details(grpc_code(refusal.code), refusal.to_string(), details)
}

/// The refusal a status carries, if it is one of Caravan's.
pub fn from_status(status: &Status) -> Option<Refusal> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    let code = info.reason.parse().ok()?;
    let prefix = format!("{code}: ");
    let detail = status
        .message()
        .strip_prefix(&prefix)
        .unwrap_or(status.message());
    Some(Refusal::new(code, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_survive_the_round_trip() {
        for code in RefusalCode::ALL {
            let refusal = Refusal::new(*code, "because");
            let status = to_status(&refusal);
            assert_eq!(status.code(), grpc_code(*code));
            assert!(status.message().starts_with(code.as_str()));
            assert_eq!(from_status(&status), Some(refusal));
        }
        assert_eq!(from_status(&Status::internal("boom")), None);
    }
}
