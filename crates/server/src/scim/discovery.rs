//! What the service offers (RFC 7644 §4, RFC 7643 §5–7): the configuration, the resource
//! types and the schemas, limited to the attributes Wardgate keeps — a client that reads
//! them knows exactly what survives a round trip.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use wardgate_core::scim::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE, USER_SCHEMA};

use super::{BASE, Connector, ScimError, respond};

const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

fn list(resources: Vec<Value>) -> Response {
    respond(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": resources.len(),
            "startIndex": 1,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

pub async fn service_provider_config(_c: Connector) -> Response {
    respond(
        StatusCode::OK,
        &json!({
            "schemas": [SPC_SCHEMA],
            "documentationUri": "https://github.com/wardgate/wardgate/blob/main/docs/scim.md",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": super::MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "SCIM bearer token",
                "description": "A token made with `wardgate scim token create`, sent as Authorization: Bearer",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{BASE}/ServiceProviderConfig")},
        }),
    )
}

fn resource_type_list() -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "A person with a Wardgate account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{BASE}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "A team in the HR system; [scim.group_roles] maps it to roles",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{BASE}/ResourceTypes/Group")},
        }),
    ]
}

pub async fn resource_types(_c: Connector) -> Response {
    list(resource_type_list())
}

pub async fn resource_type(_c: Connector, Path(id): Path<String>) -> Result<Response, ScimError> {
    let found =
        resource_type_list().into_iter().find(|r| r["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)));
    found.map(|r| respond(StatusCode::OK, &r)).ok_or_else(|| ScimError::not_found("ResourceType"))
}

/// One attribute definition (RFC 7643 §7).
fn attr(name: &str, kind: &str, multi: bool, required: bool, mutability: &str, uniqueness: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": name,
        "required": required,
        "caseExact": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": uniqueness,
    })
}

fn string(name: &str) -> Value {
    attr(name, "string", false, false, "readWrite", "none")
}

fn complex(name: &str, multi: bool, mutability: &str, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", multi, false, mutability, "none");
    a["subAttributes"] = Value::Array(subs);
    a
}

fn schema(id: &str, name: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": name,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{BASE}/Schemas/{id}")},
    })
}

fn schema_list() -> Vec<Value> {
    let mut user_name = attr("userName", "string", false, true, "immutable", "server");
    user_name["description"] = "Wardgate username: 1-64 of a-z 0-9 . _ - @, folded to lowercase; permanent".into();
    let mut manager_ref = attr("$ref", "reference", false, false, "readWrite", "none");
    manager_ref["referenceTypes"] = json!(["User"]);
    let mut member_ref = attr("$ref", "reference", false, false, "immutable", "none");
    member_ref["referenceTypes"] = json!(["User"]);
    let mut group_value = attr("value", "string", false, false, "readOnly", "none");
    group_value["returned"] = "default".into();
    let user = schema(
        USER_SCHEMA,
        "User",
        vec![
            user_name,
            string("externalId"),
            complex(
                "name",
                false,
                "readWrite",
                vec![string("formatted"), string("familyName"), string("givenName"), string("middleName")],
            ),
            string("displayName"),
            string("title"),
            string("userType"),
            attr("active", "boolean", false, false, "readWrite", "none"),
            complex(
                "emails",
                true,
                "readWrite",
                vec![string("value"), string("type"), attr("primary", "boolean", false, false, "readWrite", "none")],
            ),
            complex(
                "groups",
                true,
                "readOnly",
                vec![
                    group_value,
                    attr("display", "string", false, false, "readOnly", "none"),
                    attr("type", "string", false, false, "readOnly", "none"),
                ],
            ),
        ],
    );
    let enterprise = schema(
        ENTERPRISE_SCHEMA,
        "EnterpriseUser",
        vec![
            string("employeeNumber"),
            string("costCenter"),
            string("organization"),
            string("division"),
            string("department"),
            complex("manager", false, "readWrite", vec![string("value"), manager_ref]),
        ],
    );
    let group = schema(
        GROUP_SCHEMA,
        "Group",
        vec![
            attr("displayName", "string", false, true, "readWrite", "server"),
            string("externalId"),
            complex(
                "members",
                true,
                "readWrite",
                vec![
                    attr("value", "string", false, false, "immutable", "none"),
                    attr("type", "string", false, false, "immutable", "none"),
                    member_ref,
                ],
            ),
        ],
    );
    vec![user, enterprise, group]
}

pub async fn schemas(_c: Connector) -> Response {
    list(schema_list())
}

pub async fn schema_by_id(_c: Connector, Path(id): Path<String>) -> Result<Response, ScimError> {
    let found = schema_list().into_iter().find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)));
    found.map(|s| respond(StatusCode::OK, &s)).ok_or_else(|| ScimError::not_found("Schema"))
}
