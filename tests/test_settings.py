import pytest

from gateway.settings import SettingsError, from_env


def test_defaults() -> None:
    s = from_env({})
    assert (s.host, s.port, s.database_url, s.log_format) == ("127.0.0.1", 8080, None, "console")
    assert s.sip_port is None


@pytest.mark.parametrize(("env", "variable"), [
    ({"DNI_PORT": "http"}, "DNI_PORT"),
    ({"DNI_PORT": "70000"}, "DNI_PORT"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
    ({"DNI_PUBLIC_URL": "gateway.example"}, "DNI_PUBLIC_URL"),
    ({"DNI_LOG_FORMAT": "xml"}, "DNI_LOG_FORMAT"),
    ({"DNI_ADMIN_KEY": "short"}, "DNI_ADMIN_KEY"),
    ({"DNI_SIP_TRUNKS": "10.0.0.0/8,not-an-ip"}, "DNI_SIP_TRUNKS"),
])
def test_a_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as err:
        from_env(env)
    assert err.value.variable == variable
    assert variable in str(err.value)


def test_lists_and_urls_are_parsed() -> None:
    s = from_env({"DNI_TWILIO_AUTH_TOKEN": "a, b", "DNI_PUBLIC_URL": "https://gw.example/",
                  "DNI_SIP_TRUNKS": "192.0.2.0/24, 198.51.100.7"})
    assert s.twilio_auth_tokens == ("a", "b")
    assert s.public_url == "https://gw.example"
    assert s.sip_trunks == ("192.0.2.0/24", "198.51.100.7")
