//! Server-side assignors (KIP-848): the coordinator, not a client leader, decides who consumes
//! what. Both are pure functions of the members' subscriptions, the topics' partition counts and
//! (for `uniform`) the current assignment.

use std::collections::{BTreeMap, BTreeSet};
use strata_common::TopicPartition;

pub type Assignment = BTreeSet<TopicPartition>;

/// What an assignor sees of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    /// Static members sort by instance id, so a restarted member lands in the same place.
    pub sort_key: &'a str,
    pub subscribed_topics: &'a BTreeSet<String>,
    /// Where the member is headed now (its previous target): what a sticky assignor keeps.
    pub current: &'a Assignment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Balanced and sticky: partitions stay where they are unless balance needs them to move,
    /// so a member joining or leaving moves only the partitions it must.
    #[default]
    Uniform,
    /// Kafka's range assignor: per topic, contiguous ranges of partitions in member order.
    /// Predictable (co-partitioned topics land together) but not sticky.
    Range,
}

impl Assignor {
    pub const NAMES: &'static [&'static str] = &["uniform", "range"];

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member. Topics missing from `partition_counts` do not
    /// exist (yet) and are left out.
    pub fn assign(
        self,
        members: &[AssignorMember<'_>],
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Assignment> {
        let mut members: Vec<&AssignorMember<'_>> = members.iter().collect();
        members.sort_by(|a, b| (a.sort_key, a.member_id).cmp(&(b.sort_key, b.member_id)));
        match self {
            Assignor::Range => range(&members, partition_counts),
            Assignor::Uniform => uniform(&members, partition_counts),
        }
    }
}

fn range(
    members: &[&AssignorMember<'_>],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = members
        .iter()
        .map(|member| (member.member_id.to_string(), Assignment::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let subscribers: Vec<&str> = members
            .iter()
            .filter(|member| member.subscribed_topics.contains(topic))
            .map(|member| member.member_id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let per_member = count as usize / subscribers.len();
        let with_extra = count as usize % subscribers.len();
        let mut next = 0;
        for (index, member_id) in subscribers.iter().enumerate() {
            let take = per_member + usize::from(index < with_extra);
            let owned = target
                .get_mut(*member_id)
                .expect("every member has an entry");
            for partition in next..next + take {
                owned.insert(TopicPartition::new(topic.clone(), partition as i32));
            }
            next += take;
        }
    }
    target
}

fn uniform(
    members: &[&AssignorMember<'_>],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = members
        .iter()
        .map(|member| (member.member_id.to_string(), Assignment::new()))
        .collect();
    if members.is_empty() {
        return target;
    }
    let subscribed = |member: &AssignorMember<'_>, partition: &TopicPartition| {
        member.subscribed_topics.contains(&partition.topic)
            && partition_counts
                .get(&partition.topic)
                .is_some_and(|&count| partition.partition < count)
    };
    let all: Vec<TopicPartition> = partition_counts
        .iter()
        .filter(|(topic, _)| {
            members
                .iter()
                .any(|member| member.subscribed_topics.contains(*topic))
        })
        .flat_map(|(topic, &count)| (0..count).map(|p| TopicPartition::new(topic.clone(), p)))
        .collect();
    // With equal subscriptions this is exact balance: everyone gets `floor` partitions and
    // `extra` members get one more. With unequal subscriptions it is a good approximation.
    let floor = all.len() / members.len();
    let mut extra = all.len() % members.len();
    // Sticky: keep current partitions up to the quota, fullest members first so the members
    // allowed one extra are the ones that already have it.
    let mut order: Vec<&&AssignorMember<'_>> = members.iter().collect();
    order.sort_by_key(|member| std::cmp::Reverse(member.current.len()));
    let mut taken = BTreeSet::new();
    for member in order {
        let kept: Vec<&TopicPartition> = member
            .current
            .iter()
            .filter(|partition| subscribed(member, partition) && !taken.contains(*partition))
            .collect();
        let quota = if extra > 0 && kept.len() > floor {
            extra -= 1;
            floor + 1
        } else {
            floor
        };
        let owned = target.get_mut(member.member_id).expect("entry");
        for partition in kept.into_iter().take(quota) {
            taken.insert(partition.clone());
            owned.insert(partition.clone());
        }
    }
    // Everything else goes to the least-loaded subscribed member (ties: member order).
    for partition in all.iter().filter(|partition| !taken.contains(*partition)) {
        let receiver = members
            .iter()
            .filter(|member| subscribed(member, partition))
            .min_by_key(|member| target[member.member_id].len());
        if let Some(receiver) = receiver {
            target
                .get_mut(receiver.member_id)
                .expect("entry")
                .insert(partition.clone());
        }
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn counts(entries: &[(&str, i32)]) -> BTreeMap<String, i32> {
        entries
            .iter()
            .map(|(topic, count)| (topic.to_string(), *count))
            .collect()
    }

    fn run(
        assignor: Assignor,
        ids: &[&str],
        subscription: &BTreeSet<String>,
        current: &BTreeMap<String, Assignment>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Assignment> {
        let empty = Assignment::new();
        let members: Vec<AssignorMember<'_>> = ids
            .iter()
            .map(|id| AssignorMember {
                member_id: id,
                sort_key: id,
                subscribed_topics: subscription,
                current: current.get(*id).unwrap_or(&empty),
            })
            .collect();
        assignor.assign(&members, partition_counts)
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let target = run(
            Assignor::Range,
            &["a", "b"],
            &topics(&["t"]),
            &BTreeMap::new(),
            &counts(&[("t", 5)]),
        );
        let partitions =
            |id: &str| -> Vec<i32> { target[id].iter().map(|tp| tp.partition).collect() };
        assert_eq!(partitions("a"), vec![0, 1, 2]);
        assert_eq!(partitions("b"), vec![3, 4]);
    }

    #[test]
    fn uniform_moves_only_what_a_new_member_needs() {
        let subscription = topics(&["t"]);
        let partition_counts = counts(&[("t", 12)]);
        let three = run(
            Assignor::Uniform,
            &["a", "b", "c"],
            &subscription,
            &BTreeMap::new(),
            &partition_counts,
        );
        assert!(three.values().all(|owned| owned.len() == 4));
        let four = run(
            Assignor::Uniform,
            &["a", "b", "c", "d"],
            &subscription,
            &three,
            &partition_counts,
        );
        assert!(four.values().all(|owned| owned.len() == 3), "{four:?}");
        for id in ["a", "b", "c"] {
            assert!(four[id].is_subset(&three[id]), "{id} gained a partition");
        }
        // A member leaving hands out only its own partitions.
        let back = run(
            Assignor::Uniform,
            &["a", "b", "c"],
            &subscription,
            &four,
            &partition_counts,
        );
        for id in ["a", "b", "c"] {
            assert!(four[id].is_subset(&back[id]), "{id} lost a partition");
        }
    }

    #[test]
    fn members_get_only_topics_they_subscribe_to() {
        let empty = Assignment::new();
        let only_t = topics(&["t"]);
        let both = topics(&["t", "u"]);
        let members = [
            AssignorMember {
                member_id: "a",
                sort_key: "a",
                subscribed_topics: &only_t,
                current: &empty,
            },
            AssignorMember {
                member_id: "b",
                sort_key: "b",
                subscribed_topics: &both,
                current: &empty,
            },
        ];
        for assignor in [Assignor::Uniform, Assignor::Range] {
            let target = assignor.assign(&members, &counts(&[("t", 2), ("u", 2), ("v", 3)]));
            assert!(target["a"].iter().all(|tp| tp.topic == "t"));
            let assigned: usize = target.values().map(BTreeSet::len).sum();
            assert_eq!(assigned, 4, "{assignor:?}: {target:?}");
        }
    }

    proptest! {
        /// Every subscribed partition goes to exactly one member, and the uniform assignor keeps
        /// the counts within one of each other whatever the previous assignment was.
        #[test]
        fn assignments_cover_every_partition_once(
            member_count in 1usize..8,
            partitions in 0i32..40,
            previous_seed in proptest::collection::vec(0usize..8, 0..40),
        ) {
            let ids: Vec<String> = (0..member_count).map(|i| format!("m{i}")).collect();
            let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut current: BTreeMap<String, Assignment> = BTreeMap::new();
            for (partition, owner) in previous_seed.iter().enumerate() {
                current
                    .entry(format!("m{owner}"))
                    .or_default()
                    .insert(TopicPartition::new("t", partition as i32));
            }
            let subscription = topics(&["t"]);
            for assignor in [Assignor::Uniform, Assignor::Range] {
                let target = run(assignor, &id_refs, &subscription, &current, &counts(&[("t", partitions)]));
                let mut seen = BTreeSet::new();
                for owned in target.values() {
                    for partition in owned {
                        prop_assert!(seen.insert(partition.clone()), "{partition} assigned twice");
                    }
                }
                prop_assert_eq!(seen.len(), partitions as usize);
                let sizes: Vec<usize> = target.values().map(BTreeSet::len).collect();
                let spread = sizes.iter().max().unwrap() - sizes.iter().min().unwrap();
                prop_assert!(spread <= 1, "{:?}: {:?}", assignor, sizes);
            }
        }
    }
}
