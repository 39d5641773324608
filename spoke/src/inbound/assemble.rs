//! Assembling a delivered document from its frames: the first carries the envelope, the
//! continuations of the same cursor its payload, until one is marked complete.

use caravan_proto::v1;

/// Add a frame to the document being assembled (`partial`), refusing one that grows past
/// `max_payload_bytes`; returns the document once complete.
pub fn assemble(
    partial: &mut Option<v1::Delivery>,
    frame: v1::Delivery,
    max_payload_bytes: usize,
) -> Result<Option<v1::Delivery>, tonic::Status> {
    let protocol = |what: &str| tonic::Status::data_loss(format!("delivery stream: {what}"));
    let mut delivery = match partial.take() {
        None if frame.envelope.is_some() => frame,
        None => return Err(protocol("a continuation without a document")),
        Some(_) if frame.envelope.is_some() => {
            return Err(protocol("a new document before the last was complete"));
        }
        Some(mut d) if d.cursor == frame.cursor => {
            let payload = &mut d
                .envelope
                .as_mut()
                .expect("assembled documents have an envelope")
                .payload;
            if payload.len() + frame.continuation.len() > max_payload_bytes {
                return Err(protocol("a document larger than max_payload_bytes"));
            }
            payload.extend_from_slice(&frame.continuation);
            d.complete = frame.complete;
            d
        }
        Some(_) => return Err(protocol("a continuation of another document")),
    };
    if delivery.complete {
        delivery.continuation.clear();
        Ok(Some(delivery))
    } else {
        *partial = Some(delivery);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(cursor: u64, payload: &[u8], complete: bool) -> v1::Delivery {
        v1::Delivery {
            cursor,
            envelope: Some(v1::Envelope {
                payload: payload.to_vec(),
                ..Default::default()
            }),
            complete,
            ..Default::default()
        }
    }

    fn more(cursor: u64, data: &[u8], complete: bool) -> v1::Delivery {
        v1::Delivery {
            cursor,
            continuation: data.to_vec(),
            complete,
            ..Default::default()
        }
    }

    #[test]
    fn frames_make_one_document() {
        let mut partial = None;
        assert!(
            assemble(&mut partial, first(7, b"ab", false), 10)
                .unwrap()
                .is_none()
        );
        assert!(
            assemble(&mut partial, more(7, b"cd", false), 10)
                .unwrap()
                .is_none()
        );
        let done = assemble(&mut partial, more(7, b"e", true), 10)
            .unwrap()
            .unwrap();
        assert_eq!(done.envelope.unwrap().payload, b"abcde");
        assert!(partial.is_none());
    }

    #[test]
    fn frames_out_of_order_or_too_large_end_the_stream() {
        let mut partial = None;
        assert!(assemble(&mut partial, more(1, b"x", true), 10).is_err());
        let mut partial = None;
        assemble(&mut partial, first(1, b"ab", false), 10).unwrap();
        assert!(assemble(&mut partial, more(2, b"x", true), 10).is_err());
        let mut partial = None;
        assemble(&mut partial, first(1, b"ab", false), 10).unwrap();
        assert!(assemble(&mut partial, first(2, b"x", true), 10).is_err());
        let mut partial = None;
        assemble(&mut partial, first(1, b"abcdef", false), 10).unwrap();
        let e = assemble(&mut partial, more(1, b"ghijk", true), 10).unwrap_err();
        assert_eq!(e.code(), tonic::Code::DataLoss);
    }
}
