//! The filter grammar of `arbiter read` and `arbiter delete`:
//! `TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]]`.

use super::http::ClientError;
use crate::server::dto::FilterBody;

/// Parses `TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]]`.
pub fn parse_filter(text: &str) -> Result<FilterBody, ClientError> {
    fn part(text: &str) -> (String, Option<String>, Option<String>) {
        let (object, relation) = match text.split_once('#') {
            Some((object, relation)) => (object, Some(relation.to_string())),
            None => (text, None),
        };
        let (object_type, id) = match object.split_once(':') {
            Some((object_type, id)) => (object_type.to_string(), Some(id.to_string())),
            None => (object.to_string(), None),
        };
        (object_type, id, relation)
    }
    let (resource, subject) = match text.split_once('@') {
        Some((resource, subject)) => (resource, Some(subject)),
        None => (text, None),
    };
    let (resource_type, resource_id, relation) = part(resource);
    if resource_type.is_empty() {
        return Err(ClientError::Usage(format!(
            "invalid filter `{text}`: expected TYPE[:ID][#RELATION][@SUBJECT_TYPE[:ID][#RELATION]]"
        )));
    }
    let mut filter = FilterBody {
        resource_type,
        resource_id,
        relation,
        ..FilterBody::default()
    };
    if let Some(subject) = subject {
        let (subject_type, subject_id, subject_relation) = part(subject);
        filter.subject_type = Some(subject_type).filter(|it| !it.is_empty());
        filter.subject_id = subject_id;
        filter.subject_relation = subject_relation;
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_every_part() {
        let filter = parse_filter("document:1#viewer@group:eng#member").unwrap();
        assert_eq!(filter.resource_type, "document");
        assert_eq!(filter.resource_id.as_deref(), Some("1"));
        assert_eq!(filter.relation.as_deref(), Some("viewer"));
        assert_eq!(filter.subject_type.as_deref(), Some("group"));
        assert_eq!(filter.subject_id.as_deref(), Some("eng"));
        assert_eq!(filter.subject_relation.as_deref(), Some("member"));
        let filter = parse_filter("document#viewer").unwrap();
        assert_eq!(filter.resource_id, None);
        assert_eq!(filter.relation.as_deref(), Some("viewer"));
        assert!(parse_filter("@user:alice").is_err());
    }
}
