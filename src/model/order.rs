//! The order of filtered reads, defined on relationships (not on any store's bytes), so
//! that every backend returns the same pages and a cursor means the same everywhere.
//!
//! A read is ordered by resource — `(resource type, resource id, relation, subject type,
//! subject id, subject relation)` — or by subject — `(subject type, subject id, subject
//! relation, resource type, relation, resource id)` — each name compared byte-wise, a
//! subject without relation as the empty name. The filter picks the order whose leading
//! fields it fixes most (by the bytes they pin down, the resource order on a tie): the
//! order a store can serve from one contiguous index range.

use super::{ELLIPSIS, Relationship, RelationshipFilter};

/// The two orders a filtered read can come back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOrder {
    ByResource,
    BySubject,
}

impl ReadOrder {
    /// The six names of `rel` in this order (compare the arrays to compare relationships).
    pub fn key(self, rel: &Relationship) -> [&str; 6] {
        let subject_relation = rel.subject.relation.as_deref().unwrap_or("");
        let (r, s) = (&rel.resource, &rel.subject.object);
        match self {
            Self::ByResource => [
                &r.object_type,
                &r.object_id,
                &rel.relation,
                &s.object_type,
                &s.object_id,
                subject_relation,
            ],
            Self::BySubject => [
                &s.object_type,
                &s.object_id,
                subject_relation,
                &r.object_type,
                &rel.relation,
                &r.object_id,
            ],
        }
    }

    /// The filter's fields in this order (`None` where the filter leaves one open).
    pub fn filter_fields(self, filter: &RelationshipFilter) -> [Option<&str>; 6] {
        let subject_relation = filter
            .subject_relation
            .as_deref()
            .map(|rel| if rel == ELLIPSIS { "" } else { rel });
        match self {
            Self::ByResource => [
                filter.resource_type.as_deref(),
                filter.resource_id.as_deref(),
                filter.relation.as_deref(),
                filter.subject_type.as_deref(),
                filter.subject_id.as_deref(),
                subject_relation,
            ],
            Self::BySubject => [
                filter.subject_type.as_deref(),
                filter.subject_id.as_deref(),
                subject_relation,
                filter.resource_type.as_deref(),
                filter.relation.as_deref(),
                filter.resource_id.as_deref(),
            ],
        }
    }

    /// How many bytes the leading fixed fields pin down (each name plus a terminator).
    fn pinned(self, filter: &RelationshipFilter) -> usize {
        self.filter_fields(filter)
            .into_iter()
            .map_while(|it| it.map(|name| name.len() + 1))
            .sum()
    }
}

impl RelationshipFilter {
    /// The order a read with this filter returns relationships in.
    pub fn read_order(&self) -> ReadOrder {
        if ReadOrder::BySubject.pinned(self) > ReadOrder::ByResource.pinned(self) {
            ReadOrder::BySubject
        } else {
            ReadOrder::ByResource
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_on_the_subject_reads_by_subject_and_ties_read_by_resource() {
        let by_subject = RelationshipFilter {
            subject_type: Some("user".into()),
            subject_id: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(by_subject.read_order(), ReadOrder::BySubject);
        assert_eq!(
            RelationshipFilter::default().read_order(),
            ReadOrder::ByResource
        );
        let rel: Relationship = "doc:1#viewer@group:g#member".parse().unwrap();
        assert_eq!(
            ReadOrder::BySubject.key(&rel),
            ["group", "g", "member", "doc", "viewer", "1"]
        );
    }
}
