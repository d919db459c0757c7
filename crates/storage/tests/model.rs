//! Property test: random sequences of appends, reads, truncations, start-offset moves, retention
//! and reopens, checked after every step against a model that is just a vector of records.

mod support;

use proptest::prelude::*;
use strata_storage::{LogConfig, StorageError};
use support::*;

#[derive(Clone, Debug)]
enum Operation {
    Append { records: usize, value_bytes: usize },
    Read { at: usize, max_bytes: u64 },
    Truncate { at: usize },
    DeleteRecordsBefore { at: usize },
    Retention { keep_bytes: u64 },
    Flush,
    Reopen { clean: bool },
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (1usize..6, 0usize..300).prop_map(|(records, value_bytes)| Operation::Append { records, value_bytes }),
        3 => (any::<usize>(), 1u64..2_000).prop_map(|(at, max_bytes)| Operation::Read { at, max_bytes }),
        1 => any::<usize>().prop_map(|at| Operation::Truncate { at }),
        1 => any::<usize>().prop_map(|at| Operation::DeleteRecordsBefore { at }),
        1 => (1_000u64..20_000).prop_map(|keep_bytes| Operation::Retention { keep_bytes }),
        1 => Just(Operation::Flush),
        1 => any::<bool>().prop_map(|clean| Operation::Reopen { clean }),
    ]
}

/// Offsets are dense from 0, so the model is "value at offset i" plus the log start offset.
struct Model {
    values: Vec<String>,
    log_start_offset: i64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        segment_index_bytes: 1024,
        retention_ms: None,
        segment_ms: None,
        ..LogConfig::default()
    }
}

fn pick(at: usize, low: i64, high: i64) -> i64 {
    if high <= low {
        low
    } else {
        low + (at as i64).rem_euclid(high - low + 1)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_its_model(operations in proptest::collection::vec(operation(), 1..60)) {
        let directory = tempfile::tempdir().unwrap();
        let clock = clock();
        let (mut log, _) = open(directory.path(), config(), &clock);
        let mut model = Model { values: Vec::new(), log_start_offset: 0 };
        let mut counter = 0;
        for operation in operations {
            match operation {
                Operation::Append { records, value_bytes } => {
                    counter += 1;
                    let tag = format!("a{counter}");
                    let info = log.append(batch_with_size(&tag, records, START_MS + counter, value_bytes), 0).unwrap();
                    prop_assert_eq!(info.base_offset, model.values.len() as i64);
                    model.values.extend((0..records).map(|index| format!("{tag}-{index}")));
                }
                Operation::Read { at, max_bytes } => {
                    let offset = pick(at, model.log_start_offset, model.values.len() as i64);
                    let read = log.read(offset, max_bytes, None).unwrap();
                    if offset < model.values.len() as i64 {
                        prop_assert!(!read.records.is_empty());
                    }
                    let got = values(&read_all(&log, offset, max_bytes));
                    let got: Vec<String> = got.iter().map(|value| value.trim_end_matches('.').to_string()).collect();
                    prop_assert_eq!(&got[..], &model.values[offset as usize..]);
                }
                Operation::Truncate { at } => {
                    let offset = pick(at, model.log_start_offset, model.values.len() as i64);
                    log.truncate_to(offset).unwrap();
                    // Truncation removes whole batches, so the end may land below `offset`.
                    let end = log.log_end_offset();
                    prop_assert!(end <= offset);
                    model.values.truncate(end as usize);
                    model.log_start_offset = model.log_start_offset.min(end);
                }
                Operation::DeleteRecordsBefore { at } => {
                    let offset = pick(at, model.log_start_offset, model.values.len() as i64);
                    prop_assert_eq!(log.delete_records_before(offset).unwrap(), offset);
                    model.log_start_offset = offset;
                }
                Operation::Retention { keep_bytes } => {
                    log.set_config(LogConfig { retention_bytes: Some(keep_bytes), ..config() }).unwrap();
                    log.enforce_retention().unwrap();
                    log.set_config(config()).unwrap();
                    prop_assert!(log.log_start_offset() >= model.log_start_offset);
                    model.log_start_offset = log.log_start_offset();
                }
                Operation::Flush => log.flush().unwrap(),
                Operation::Reopen { clean } => {
                    if clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    let (reopened, report) = open(directory.path(), config(), &clock);
                    prop_assert!(report.truncation.is_none(), "nothing was torn: {:?}", report.truncation);
                    log = reopened;
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.values.len() as i64);
            prop_assert_eq!(log.log_start_offset(), model.log_start_offset);
            log.validate();
            if model.log_start_offset > 0 {
                let below = log.read(model.log_start_offset - 1, 100, None);
                let out_of_range = matches!(below, Err(StorageError::OffsetOutOfRange { .. }));
                prop_assert!(out_of_range, "reads below the log start must fail");
            }
        }
    }
}
