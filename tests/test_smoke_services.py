from tests import factories


def test_customer_created_with_normalised_identities(session, admin):
    c = factories.customer(session, email=" Taro@Example.JP ", phone="０９０－１２３４－５６７８")
    session.commit()
    assert c.email == "taro@example.jp"
    assert c.phone == "+819012345678"
    assert c.full_name == "山田 太郎"
